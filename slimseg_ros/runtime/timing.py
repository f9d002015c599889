"""Timing primitives: interleaved runs, percentiles in milliseconds, the CPU's name.

A leaf module (it imports nothing else of the package), so the backend registry, the benchmarks,
the evaluation reports and the node's diagnostics can all use it without import cycles.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["cpu_name", "load_average", "percentile_ms", "time_interleaved"]


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


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (NaN where the OS has none): recorded beside every
    measurement, since another process on the cores changes absolute times."""
    if hasattr(os, "getloadavg"):
        return os.getloadavg()
    return (float("nan"),) * 3


def percentile_ms(seconds: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of durations in seconds, in milliseconds (None if empty)."""
    if len(seconds) == 0:
        return None
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), q) * 1e3)


def time_interleaved(runners: Mapping[str, Callable[[np.ndarray], object]], frame: np.ndarray,
                     repeats: int, warmup: int = 2, block: int = 1) -> dict[str, list[float]]:
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
