"""``slimseg bench``: per-width latency of the deployed graph and of two references, in one run.

Everything is timed end to end from a uint8 (H, W, 3) image to uint8 (H, W) labels. The three
variants of a width are timed in turns within the same loop, so the machine's slow and fast
moments hit all of them alike and their *ratios* are trustworthy even on a noisy 2-core VM:

* ``frozen``: the engine's runner (``freeze(width)``, BN folded, on the chosen backend);
* ``independent_static``: a plain network with the same channel counts, built directly;
* ``eager_slimmable``: the slimmable network itself at that width (sliced weights, switchable BN).

Timing uses :func:`~slimseg_ros.runtime.timing.time_interleaved` in turns of ``block`` runs with
the first of each turn dropped: ONNX Runtime's worker threads keep spinning after a run, and in
plain round-robin that spin is charged to the torch reference that runs next, enough to reverse
which backend looks faster (docs/log/backends.md, "Thread pools that spin, and a busy robot").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..model.pipeline import SegmentationPipeline
from ..model.profile import count_flops, count_params
from ..model.slimseg import SlimSegNet, build_static
from ..widths import width_key
from .loader import load_engine, load_model
from .torch_backend import torch_runner
from .timing import cpu_name, load_average, percentile_ms, time_interleaved

__all__ = ["BenchOptions", "compare_backends", "format_comparison", "matmul_gflops",
           "run_benchmark"]


def matmul_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """The machine's fp32 matmul throughput (GFLOP/s) with torch's current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    runs, t0 = 0, time.perf_counter()
    best = float("inf")
    while time.perf_counter() - t0 < seconds or runs < 3:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
        runs += 1
    return 2 * n**3 / best / 1e9


class _EagerWidth(torch.nn.Module):
    """The slimmable net pinned to one width, so it can sit inside the uint8 pipeline."""

    def __init__(self, model: SlimSegNet, width: float) -> None:
        super().__init__()
        self.model = model
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.model.set_width(self.width)
        return self.model(x)


@dataclass(frozen=True)
class BenchOptions:
    """How to time, for every benchmark here.

    Attributes:
        device: ``cpu`` | ``cuda[:N]`` | ``auto``.
        input_size: (H, W) the network runs at.
        repeats: timed runs per width (and variant or backend).
        threads: torch and ONNX Runtime intra-op threads.
        cache_dir: engine cache for compiled backends.
        block: consecutive runs per turn of :func:`time_interleaved`, the first of each dropped
            (1: plain round-robin, every run kept).
        precision: ``fp32`` | ``fp16`` (CUDA only) for the engine and the reference networks.
    """

    device: str = "cpu"
    input_size: tuple[int, int] = (360, 480)
    repeats: int = 30
    threads: int = 2
    cache_dir: str | None = None
    block: int = 5
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.block < 1:
            raise ValueError(f"repeats and block must be >= 1, got {self.repeats} and "
                             f"{self.block}")


def _start(options: BenchOptions, progress: Callable[[str], None] | None
           ) -> Callable[[str], None]:
    torch.set_num_threads(options.threads)
    return progress or (lambda _m: None)


def _engine(checkpoint: str | None, backend: str, options: BenchOptions,
            say: Callable[[str], None]) -> Any:
    torch.manual_seed(0)  # the same random stand-in (no checkpoint) for every backend
    return load_engine(checkpoint, backend=backend, device=options.device,
                       precision=options.precision, input_size=options.input_size,
                       cache_dir=options.cache_dir,
                       allow_random=True, warmup_repeats=1, log=say)


def run_benchmark(checkpoint: str | None = None, *, backend: str = "torch",
                  options: BenchOptions = BenchOptions(),
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every width; returns the document `slimseg bench --json` writes (plus a summary)."""
    say = _start(options, progress)
    engine = _engine(checkpoint, backend, options, say)
    model, meta, source = load_model(checkpoint, allow_random=True)
    model.eval()
    mean, std = meta.mean, meta.std
    image = np.random.default_rng(0).integers(0, 256, (*options.input_size, 3), dtype=np.uint8)
    batch = np.ascontiguousarray(image[None])
    say(f"matmul throughput ({options.threads} threads)...")
    gflops_machine = matmul_gflops()

    widths = engine.widths
    device = torch.device(engine.device)  # the references run where the engine runs
    variants: dict[str, dict[float, Callable[[np.ndarray], np.ndarray]]] = {
        "frozen": {w: engine.runner(w) for w in widths},
        "independent_static": {
            w: torch_runner(SegmentationPipeline(build_static(model.config, w), mean, std),
                            device, options.precision)
            for w in widths
        },
        "eager_slimmable": {
            w: torch_runner(SegmentationPipeline(_EagerWidth(model, w), mean, std),
                            device, options.precision)
            for w in widths
        },
    }
    say(f"timing {len(widths)} widths x {len(variants)} variants x {options.repeats} runs...")
    keyed = time_interleaved(
        {f"{n}@{w}": run for n, runners in variants.items() for w, run in runners.items()},
        batch, options.repeats, block=options.block)
    times = {name: {w: keyed[f"{name}@{w}"] for w in widths} for name in variants}

    # switching: the cost of the switch itself, and the first frame after a switch
    say("width switching...")
    switch_s: list[float] = []
    after_switch: dict[float, list[float]] = {w: [] for w in widths}
    rng = np.random.default_rng(1)
    current = widths[-1]
    for _ in range(max(40, 4 * options.repeats)):
        target = float(rng.choice([w for w in widths if w != current]))
        t0 = time.perf_counter()
        engine.runner(target)
        switch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine.infer(image, target)
        after_switch[target].append(time.perf_counter() - t0)
        current = target

    doc: dict[str, Any] = {
        "backend": engine.backend,
        "device": engine.device,
        "precision": engine.precision,
        "threads": options.threads,
        "input_size": list(options.input_size),
        "model": source,
        "repeats": options.repeats,
        "block": options.block,
        "matmul_gflops": round(gflops_machine, 1),
        "widths": {},
        "references": {"independent_static": {}, "eager_slimmable": {}},
        "switch_ms_p99": round(percentile_ms(switch_s, 99), 4),
    }
    for w in widths:
        frozen = model.freeze(w)
        flops = count_flops(frozen, options.input_size)
        p50 = percentile_ms(times["frozen"][w], 50)
        doc["widths"][width_key(w)] = {
            "latency_ms_p50": round(p50, 2),
            "latency_ms_p90": round(percentile_ms(times["frozen"][w], 90), 2),
            "gflops": round(flops / 1e9, 3),
            "params": count_params(frozen),
            "achieved_gflops_per_s": round(flops / 1e9 / (p50 / 1e3), 1),
            "first_frame_after_switch_ms_p50": round(percentile_ms(after_switch[w], 50), 2),
        }
        for ref in ("independent_static", "eager_slimmable"):
            doc["references"][ref][width_key(w)] = {
                "latency_ms_p50": round(percentile_ms(times[ref][w], 50), 2),
                "latency_ms_p90": round(percentile_ms(times[ref][w], 90), 2),
            }
    doc["summary"] = _summary(doc, widths)
    return doc


def _summary(doc: dict[str, Any], widths: Sequence[float]) -> dict[str, Any]:
    """The ratios the foundation issue sets targets on, computed from this one run."""
    per = doc["widths"]
    static = doc["references"]["independent_static"]
    lo, hi = width_key(widths[0]), width_key(widths[-1])
    return {
        "frozen_over_static": {
            k: round(per[k]["latency_ms_p50"] / static[k]["latency_ms_p50"], 3) for k in per
        },
        "narrowest_over_widest": round(per[lo]["latency_ms_p50"] / per[hi]["latency_ms_p50"], 3),
        "first_frame_after_switch_over_p50": {
            k: round(per[k]["first_frame_after_switch_ms_p50"] / per[k]["latency_ms_p50"], 3)
            for k in per
        },
        "widest_fraction_of_matmul":
            round(per[hi]["achieved_gflops_per_s"] / doc["matmul_gflops"], 3),
    }


# -- backends against each other (slimseg bench --compare) ---------------------------------

def compare_backends(checkpoint: str | None = None, *,
                     backends: Sequence[str] = ("torch", "onnxruntime"),
                     options: BenchOptions = BenchOptions(),
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Per-width latency of several backends in one interleaved run, and their speed ratios.

    Args:
        checkpoint: model file; ``None`` = the shipped model, else a random one (speed does not
            depend on the weights).
        backends: names from the registry; the first is the reference of the ratios. Several
            backends in one process are timed interleaved (robust ratios on a noisy machine,
            but their thread pools can disturb each other); one backend per process gives the
            undisturbed figure on a quiet machine.

    Returns:
        ``{"backends": {name: {"device", "widths": {"0.25": {"latency_ms_p50", ..}}}},
        "speedup": {name: {"0.25": reference p50 / name p50}}, "threads", "input_size",
        "cpu", "loadavg_start", "loadavg_end", ...}``. A load average well above the thread
        count at start or end means another process competed for the cores.
    """
    if not backends:
        raise ValueError("name at least one backend")
    say = _start(options, progress)
    load_start = load_average()
    engines = {}
    for name in backends:
        say(f"building {name}...")
        engines[name] = _engine(checkpoint, name, options, say)
    widths = engines[backends[0]].widths
    frame = np.random.default_rng(0).integers(0, 256, (1, *options.input_size, 3), dtype=np.uint8)
    doc: dict[str, Any] = {
        "threads": options.threads,
        "input_size": list(options.input_size),
        "cpu": cpu_name(),
        "repeats": options.repeats,
        "block": options.block,
        "model": engines[backends[0]].model_path or "randomly initialised",
        "loadavg_start": [round(v, 2) for v in load_start],
        "backends": {n: {"device": e.device, "widths": {}} for n, e in engines.items()},
        "speedup": {n: {} for n in backends[1:]},
    }
    for width in widths:
        say(f"timing width {width:g}...")
        runners = {n: e.runner(width) for n, e in engines.items()}
        samples = time_interleaved(runners, frame, options.repeats, block=options.block)
        p50 = {name: percentile_ms(values, 50) for name, values in samples.items()}
        for name, values in samples.items():
            doc["backends"][name]["widths"][width_key(width)] = {
                "latency_ms_p50": round(p50[name], 2),
                "latency_ms_p90": round(percentile_ms(values, 90), 2),
            }
        for name in backends[1:]:
            doc["speedup"][name][width_key(width)] = round(p50[backends[0]] / p50[name], 2)
    load_end = load_average()
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
