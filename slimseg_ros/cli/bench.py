"""``slimseg bench``: per-width latency, FLOPs and params, and the references they are judged
by."""

from __future__ import annotations

import argparse
import sys

from ..sizes import format_size
from .common import input_size_arg, write_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure per-width latency (uint8 image -> uint8 labels) against references",
        description="Time every width end to end (uint8 image in, uint8 labels out) on a "
        "backend, next to an independently built static network and the eager slimmable network "
        "at the same width, all in one run so the ratios hold on a noisy machine. Also reports "
        "the width-switch cost, GFLOPs, params and the machine's matmul GFLOP/s. With --compare, "
        "time several backends against each other per width instead.",
    )
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: the shipped model, else a random one)")
    p.add_argument("--backend", default="torch", help="torch | onnxruntime | tensorrt | auto")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N] (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                   help="engine and reference precision (fp16 needs CUDA; default fp32)")
    p.add_argument("--input-size", type=input_size_arg, default=(360, 480), metavar="HxW",
                   help="network input size (default: 360x480)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per width and variant")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--block", type=int, default=5,
                   help="consecutive runs per turn, the first of each dropped (default: 5); 1 is "
                   "plain round-robin, which charges ONNX Runtime's spinning threads to the "
                   "next run")
    p.add_argument("--compare", default=None, metavar="B1,B2[,..]",
                   help="time these backends against each other per width (e.g. "
                   "torch,onnxruntime; the first is the reference of the speed ratios)")
    p.add_argument("--engine-cache-dir", default=None, help="engine cache for compiled backends")
    p.add_argument("--json", dest="json_out", default=None, help="write the results here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime.benchmark import (
        BenchOptions, compare_backends, format_comparison, run_benchmark)

    if args.repeats < 3:
        raise ValueError("--repeats must be at least 3")
    if args.block < 1:
        raise ValueError("--block must be at least 1")
    if args.precision == "fp16" and args.device == "cpu":
        raise ValueError("--precision fp16 needs a CUDA device (--device cuda)")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    options = BenchOptions(device=args.device, input_size=args.input_size, repeats=args.repeats,
                           threads=args.threads, cache_dir=args.engine_cache_dir,
                           block=args.block, precision=args.precision)
    if args.compare is not None:
        backends = [b.strip() for b in args.compare.split(",") if b.strip()]
        if len(set(backends)) != len(backends) or len(backends) < 2:
            raise ValueError(f"--compare needs two or more different backends, e.g. "
                             f"torch,onnxruntime; got {args.compare!r}")
        doc = compare_backends(args.checkpoint, backends=backends, options=options,
                               progress=say)
        print(format_comparison(doc))
    else:
        doc = run_benchmark(args.checkpoint, backend=args.backend, options=options,
                            progress=say)
        print(format_table(doc))
    if args.json_out:
        write_json(args.json_out, doc)
        print(f"wrote {args.json_out}")
    return 0


def format_table(doc: dict) -> str:
    """A Markdown table of the document (what docs/log/benchmarks.md shows)."""
    lines = [
        f"backend {doc['backend']} on {doc['device']}, {doc['threads']} threads, input "
        f"{format_size(doc['input_size'])}, {doc['repeats']} runs "
        f"(turns of {doc.get('block', 1)}); "
        f"matmul {doc['matmul_gflops']} GFLOP/s; switch p99 {doc['switch_ms_p99']:.4f} ms",
        "",
        "| width | p50 ms | p90 ms | static p50 | eager p50 | frozen/static | GFLOPs | params "
        "| GFLOP/s | 1st after switch / p50 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    s = doc["summary"]
    for w, r in doc["widths"].items():
        st = doc["references"]["independent_static"][w]["latency_ms_p50"]
        ea = doc["references"]["eager_slimmable"][w]["latency_ms_p50"]
        lines.append(
            f"| {w} | {r['latency_ms_p50']:.1f} | {r['latency_ms_p90']:.1f} | {st:.1f} | {ea:.1f} "
            f"| {s['frozen_over_static'][w]:.3f} | {r['gflops']:.3f} | {r['params']:,} "
            f"| {r['achieved_gflops_per_s']:.1f} "
            f"| {s['first_frame_after_switch_over_p50'][w]:.2f} |"
        )
    lines += [
        "",
        f"narrowest / widest latency: {s['narrowest_over_widest']:.3f}; widest width reaches "
        f"{100 * s['widest_fraction_of_matmul']:.0f}% of the matmul GFLOP/s",
    ]
    return "\n".join(lines)
