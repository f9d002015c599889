"""``slimseg export``: build every operating point's engine ahead of time into a cache
directory."""

from __future__ import annotations

import argparse
import sys

from .common import input_size_arg

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="build per-width ONNX or TensorRT engines ahead of time",
        description="Freeze each width (BN folded, static input shape) and build its engine "
        "into --out, the directory the node's engine_cache_dir parameter points at. Prints build "
        "time and size per width and input size. Engines are keyed by checkpoint hash, width, "
        "input size, precision, library versions and GPU, so a stale engine is rebuilt, never "
        "loaded. For a node with several input_sizes, give the same sizes with --input-sizes.",
        epilog="example (Jetson): slimseg export --format tensorrt --widths all "
        "--input-sizes 360x480,270x360,180x240 --precision fp16 --out ~/.cache/slimseg_ros",
    )
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: shipped model)")
    p.add_argument("--format", dest="fmt", required=True, choices=("onnx", "tensorrt"))
    p.add_argument("--widths", default="all", help="'all' or a comma list, e.g. 0.25,1.0")
    p.add_argument("--input-size", type=input_size_arg, default=None, metavar="HxW",
                   help="static input size (default: the checkpoint's)")
    p.add_argument("--input-sizes", default=None, metavar="HxW[,HxW...]",
                   help="build every width at each of these sizes (the node's input_sizes)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    p.add_argument("--out", required=True, help="engine cache directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime.export import export_engines
    from ..sizes import format_size

    records = export_engines(
        checkpoint=args.checkpoint, fmt=args.fmt, widths=args.widths,
        input_size=args.input_size, precision=args.precision, out_dir=args.out,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        input_sizes=args.input_sizes,  # parsed and checked there, with the other arguments
    )
    print("| input | width | build s | size MB | artifact |\n| --- | --- | --- | --- | --- |")
    for r in records:
        print(f"| {format_size(r.input_size)} | {r.width:g} | {r.build_seconds:.1f} | "
              f"{r.size_bytes / 1e6:.2f} | {r.path} |")
    return 0
