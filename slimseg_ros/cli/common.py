"""Argument parsing helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["parse_size", "write_json", "add_backend_args"]


def parse_size(text: str) -> tuple[int, int]:
    """``"360x480"`` -> (360, 480) (height x width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 360x480, got {text!r}") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size must be at least 32x32, got {text!r}")
    return h, w


def write_json(path: str | os.PathLike[str], doc: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=2) + "\n")


def add_backend_args(parser: argparse.ArgumentParser, default_backend: str = "auto") -> None:
    parser.add_argument("--backend", default=default_backend,
                        help="auto | torch | onnxruntime | tensorrt (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                        help="fp16 needs a GPU (default: fp32)")
    parser.add_argument("--engine-cache-dir", default=None,
                        help="where compiled per-width engines are cached (ONNX, TensorRT)")
