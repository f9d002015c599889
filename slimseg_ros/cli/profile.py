"""``slimseg profile``: the device latency table (p50/p95/p99 per operating point)."""

from __future__ import annotations

import argparse
import sys

from .common import add_backend_args, write_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile",
        help="measure the device latency table of every operating point (width x input size)",
        description="Build every operating point (each width at each input size) on one "
        "backend, time them all end to end the way the node runs a frame (a camera-sized uint8 "
        "image in, resized to the point's input size, uint8 labels back at camera size), "
        "interleaved in turns as slimseg bench does, and write p50/p95/p99 per point with the "
        "key the node checks before using the table: device name, backend, precision, threads, "
        "library versions and the checkpoint's sha256. Give the file to the node's "
        "latency_table parameter.",
    )
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: the shipped model)")
    add_backend_args(p)
    p.add_argument("--input-sizes", required=True, metavar="HxW[,HxW...]",
                   help="network input sizes, e.g. 360x480,270x360,180x240 (the first is the "
                   "camera size unless --camera-size says otherwise)")
    p.add_argument("--camera-size", default=None, metavar="HxW",
                   help="size of the frames fed in (default: the first input size)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per point (default: 30)")
    p.add_argument("--block", type=int, default=5,
                   help="consecutive runs per turn, the first of each dropped (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    p.add_argument("--out", required=True, help="where to write the table (JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..runtime import load_point_engine
    from ..runtime.cache import file_sha256
    from ..runtime.latency_table import make_table, profile_points
    from ..sizes import MIN_INPUT_SIDE, format_size, parse_size, parse_sizes

    if args.repeats < 3:
        raise ValueError("--repeats must be at least 3")
    if args.block < 1 or args.threads < 1:
        raise ValueError("--block and --threads must be at least 1")
    sizes = parse_sizes(args.input_sizes, MIN_INPUT_SIDE)
    camera = parse_size(args.camera_size) if args.camera_size else sizes[0]
    torch.set_num_threads(args.threads)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    engine = load_point_engine(args.checkpoint, input_sizes=sizes, backend=args.backend,
                               device=args.device, precision=args.precision,
                               cache_dir=args.engine_cache_dir, warmup_repeats=1, log=say)
    try:
        points = profile_points(engine, repeats=args.repeats, block=args.block,
                                camera_size=camera, progress=say)
        sha = file_sha256(engine.model_path) if engine.model_path else None
        table = make_table(engine, sha, points, args.repeats, args.block, camera)
    finally:
        engine.close()
    write_json(args.out, table)
    print(f"| point | p50 ms | p95 ms | p99 ms |  ({table['key']['device']}, "
          f"{engine.backend}, {engine.precision}, {table['key']['threads']} threads, camera "
          f"{format_size(camera)}, load average {table['loadavg'][0]})")
    print("| --- | --- | --- | --- |")
    for name, row in points.items():
        print(f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['p99_ms']:.2f} |")
    print(f"wrote {args.out}")
    return 0
