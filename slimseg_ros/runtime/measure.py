"""Timing backends against each other: interleaved runs, so ratios survive a noisy machine.

Used by ``backend: auto`` on a CPU (torch vs ONNX Runtime, measured once per machine and cached)
and by :func:`compare_backends`, the per-width comparison behind ``docs/backends.md``
(``python -m slimseg_ros.runtime.measure`` or ``slimseg bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..model.config import width_key
from .engine import Runner

__all__ = ["cpu_name", "time_interleaved", "compare_backends", "percentile_ms"]


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), for labelling and keying measurements."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def percentile_ms(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64) * 1e3, q))


def time_interleaved(runners: Mapping[str, Runner], frame: np.ndarray, repeats: int,
                     warmup: int = 2, block: int = 1) -> dict[str, list[float]]:
    """Seconds per run of each runner, timed in turns with the order rotated every round.

    Interleaving spreads the machine's slow and fast moments over all runners alike. Each turn
    is ``block`` consecutive runs of one runner, and only the last ``block - 1`` of them are
    kept when ``block > 1``: a thread pool that spins after its runs (ONNX Runtime's does) slows
    down whoever runs right after it, which is an artefact of sharing one process, not a cost
    either backend has on its own.
    """
    if repeats < 1 or block < 1:
        raise ValueError(f"repeats and block must be >= 1, got {repeats} and {block}")
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name](frame)
    samples: dict[str, list[float]] = {name: [] for name in names}
    kept = block - 1 if block > 1 else 1
    rounds = -(-repeats // kept)
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            for j in range(block):
                t0 = time.perf_counter()
                runners[name](frame)
                elapsed = time.perf_counter() - t0
                if (block == 1 or j > 0) and len(samples[name]) < repeats:
                    samples[name].append(elapsed)
    return samples


def compare_backends(
    checkpoint: str | None = None,
    *,
    backends: Sequence[str] = ("torch", "onnxruntime"),
    device: str = "cpu",
    input_size: tuple[int, int] = (360, 480),
    repeats: int = 30,
    threads: int = 2,
    cache_dir: str | None = None,
    block: int = 5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per-width latency of several backends in one interleaved run, and their speed ratios.

    Args:
        checkpoint: model file; ``None`` = the shipped model, else a random one (speed does not
            depend on the weights).
        backends: names from the registry; the first is the reference of the ratios. Several
            backends in one process are timed interleaved (robust ratios on a noisy machine,
            but their thread pools can disturb each other); one backend per process gives the
            undisturbed figure on a quiet machine.
        threads: torch and ONNX Runtime intra-op threads.
        block: consecutive runs per turn of :func:`time_interleaved` (the first is dropped).

    Returns:
        ``{"backends": {name: {"device", "widths": {"0.25": {"latency_ms_p50", ..}}}},
        "speedup": {name: {"0.25": reference p50 / name p50}}, "threads", "input_size",
        "cpu", "loadavg_start", "loadavg_end", ...}``. A load average well above the thread
        count at start or end means another process competed for the cores.
    """
    from .loader import load_engine  # loader imports the backends, which import this module

    say = progress or (lambda _m: None)
    if not backends:
        raise ValueError("name at least one backend")
    torch.set_num_threads(threads)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    engines = {}
    for name in backends:
        torch.manual_seed(0)  # the same random stand-in for every backend
        say(f"building {name}...")
        engines[name] = load_engine(checkpoint, backend=name, device=device,
                                    input_size=input_size, cache_dir=cache_dir,
                                    allow_random=True, warmup_repeats=1, log=say)
    widths = engines[backends[0]].widths
    frame = np.random.default_rng(0).integers(0, 256, (1, *input_size, 3), dtype=np.uint8)
    doc: dict[str, Any] = {
        "threads": threads,
        "input_size": list(input_size),
        "cpu": cpu_name(),
        "repeats": repeats,
        "block": block,
        "model": engines[backends[0]].model_path or "randomly initialised",
        "loadavg_start": [round(v, 2) for v in load_start],
        "backends": {n: {"device": e.device, "widths": {}} for n, e in engines.items()},
        "speedup": {n: {} for n in backends[1:]},
    }
    for width in widths:
        say(f"timing width {width:g}...")
        runners = {n: e.runner(width) for n, e in engines.items()}
        samples = time_interleaved(runners, frame, repeats, block=block)
        p50 = {name: percentile_ms(values, 50) for name, values in samples.items()}
        for name, values in samples.items():
            doc["backends"][name]["widths"][width_key(width)] = {
                "latency_ms_p50": round(p50[name], 2),
                "latency_ms_p90": round(percentile_ms(values, 90), 2),
            }
        for name in backends[1:]:
            doc["speedup"][name][width_key(width)] = round(p50[backends[0]] / p50[name], 2)
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    doc["loadavg_end"] = [round(v, 2) for v in load_end]
    doc["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "unset")
    return doc


def format_comparison(doc: Mapping[str, Any]) -> str:
    """A Markdown table of :func:`compare_backends`' document."""
    names = list(doc["backends"])
    ref = names[0]
    head = " | ".join(f"{n} p50 ms | {n} p90 ms" for n in names)
    ratios = "".join(f" {ref}/{n} |" for n in names[1:])
    lines = [
        f"{doc['cpu']}, {doc['threads']} threads, input {doc['input_size'][0]}x"
        f"{doc['input_size'][1]}, {doc['repeats']} runs per width (turns of {doc['block']}, "
        f"first dropped); OMP_WAIT_POLICY {doc['omp_wait_policy']}; load average "
        f"{doc['loadavg_start'][0]} at start, {doc['loadavg_end'][0]} at end",
        "",
        f"| width | {head} |{ratios}",
        "| --- |" + " --- |" * (2 * len(names) + len(names) - 1),
    ]
    for w in doc["backends"][ref]["widths"]:
        cells = " | ".join(
            f"{doc['backends'][n]['widths'][w]['latency_ms_p50']:.1f} | "
            f"{doc['backends'][n]['widths'][w]['latency_ms_p90']:.1f}" for n in names
        )
        speed = "".join(f" {doc['speedup'][n][w]:.2f}x |" for n in names[1:])
        lines.append(f"| {w} | {cells} |{speed}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m slimseg_ros.runtime.measure``: compare CPU backends per width."""
    parser = argparse.ArgumentParser(prog="python -m slimseg_ros.runtime.measure",
                                     description=compare_backends.__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--input-size", default="360x480")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=5,
                        help="consecutive runs per turn; the first of each is dropped (1: plain "
                        "round-robin, which charges ONNX Runtime's spinning threads to torch)")
    parser.add_argument("--engine-cache-dir", default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.input_size.lower().split("x"))
    doc = compare_backends(
        args.checkpoint, backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        device=args.device, input_size=(h, w), repeats=args.repeats, threads=args.threads,
        cache_dir=args.engine_cache_dir, block=args.block,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(format_comparison(doc))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
