"""Argument parsing helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["parse_size", "parse_widths", "write_json", "add_backend_args"]


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


def parse_widths(text: str, available: Sequence[float]) -> tuple[float, ...]:
    """``"all"`` or a comma list like ``"0.25,1.0"``, each one of ``available``."""
    if text.strip().lower() == "all":
        return tuple(available)
    try:
        wanted = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"widths must be 'all' or numbers like 0.25,1.0, got {text!r}") from None
    valid = ", ".join(f"{w:g}" for w in available)
    for w in wanted:
        if not any(abs(w - a) < 1e-9 for a in available):
            raise ValueError(f"width {w:g} is not one of the model's widths ({valid})")
    if not wanted:
        raise ValueError("no widths given")
    return wanted


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
