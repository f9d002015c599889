"""Argument parsing helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..sizes import MIN_INPUT_SIDE, Size, parse_size

__all__ = ["input_size_arg", "write_json", "add_backend_args"]


def input_size_arg(text: str) -> Size:
    """``--input-size HxW``: a network input size (argparse shows the message as it is)."""
    try:
        return parse_size(text, MIN_INPUT_SIDE)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
