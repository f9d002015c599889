"""Backend registry: how each backend turns the frozen widths into runners, and ``auto``'s choice.

``auto`` (DESIGN section 8) prefers, in order: ``tensorrt`` (torch_tensorrt importable and a CUDA
device), ``onnxruntime`` on CUDA (its CUDA provider and a CUDA device), ``torch`` on CUDA; on a
CPU it takes whichever of ``onnxruntime`` and ``torch`` *measured* faster on this machine. That
measurement (both backends built, the narrowest and widest widths timed interleaved) takes a few
seconds once, and is cached per CPU, thread count, library versions, architecture and input size
in ``cpu_backend_choice.json`` in the engine cache directory; delete the file to measure again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..model.checkpoint import CheckpointMeta, random_meta
from ..model.config import ModelConfig
from ..model.slimseg import SlimSegNet
from .cache import _atomic_write_text, default_cache_dir
from .deps import (
    BackendUnavailableError,
    cuda_device_name,
    import_onnx_exporter,
    import_onnxruntime,
    import_torch_tensorrt,
    module_version,
    onnxruntime_providers,
)
from .engine import Runner
from .onnx_backend import CUDA_PROVIDER, build_onnxruntime_runners
from .tensorrt_backend import build_tensorrt_runners
from .timing import cpu_name, percentile_ms, time_interleaved
from .torch_backend import build_torch_runners

__all__ = [
    "BACKEND_NAMES",
    "BUILDERS",
    "BackendUnavailableError",
    "CPU_CHOICE_FILE",
    "build_runners",
    "choose_backend",
    "measure_cpu_backends",
]

logger = logging.getLogger(__name__)

CPU_CHOICE_FILE = "cpu_backend_choice.json"

# name -> builder(model, meta, *, device, precision, cache_dir, upsample, model_path)
#         -> (runners, device actually used, notes)
Builder = Callable[..., "tuple[dict[float, Runner], str, list[str]]"]


def _torch(model: SlimSegNet, meta: CheckpointMeta, *, device: str, precision: str,
           cache_dir: object, upsample: str, model_path: object
           ) -> tuple[dict[float, Runner], str, list[str]]:
    runners, used = build_torch_runners(model, meta, device, precision, upsample)
    return runners, used, [f"torch: {torch.get_num_threads()} CPU threads" if used == "cpu"
                           else f"torch: {cuda_device_name(torch.device(used).index or 0)}"]


BUILDERS: dict[str, Builder] = {
    "torch": _torch,
    "onnxruntime": build_onnxruntime_runners,
    "tensorrt": build_tensorrt_runners,
}
BACKEND_NAMES: tuple[str, ...] = tuple(BUILDERS)


def build_runners(name: str, model: SlimSegNet, meta: CheckpointMeta, **options: object
                  ) -> tuple[dict[float, Runner], str, list[str]]:
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BUILDERS)}") from None
    return builder(model, meta, **options)


# -- auto ---------------------------------------------------------------------------------------


def choose_backend(device: str, precision: str, *, model: SlimSegNet | None = None,
                   meta: CheckpointMeta | None = None, cache_dir: str | os.PathLike[str] | None
                   = None, upsample: str = "nearest") -> tuple[str, str]:
    """The backend ``auto`` picks for ``device`` and ``precision``, with the reason it gives.

    Args:
        model, meta: the model to measure on a CPU; without them a randomly initialised
            default-architecture model at the default input size stands in (speed does not
            depend on the weights, and the measurement is cached either way).
        cache_dir: where the CPU measurement is cached (default: the engine cache).
    """
    if device != "cpu" and torch.cuda.is_available():
        return _choose_gpu(device)
    if device != "auto" and device != "cpu":
        return "torch", (f"device {device!r} requested but no CUDA device is visible; torch "
                         "reports it")
    if precision == "fp16":
        return "torch", "fp16 needs a CUDA device and none is visible; torch reports it"
    return _choose_cpu(model, meta, cache_dir, upsample)


def _choose_gpu(device: str) -> tuple[str, str]:
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
    gpu = cuda_device_name(index)
    try:
        trt = import_torch_tensorrt()
        return "tensorrt", (f"CUDA device {gpu} and torch_tensorrt "
                            f"{getattr(trt, '__version__', '?')} available (compiled engines)")
    except BackendUnavailableError as exc:
        missing = str(exc).split(";")[0]
    if CUDA_PROVIDER in onnxruntime_providers():
        return "onnxruntime", (f"CUDA device {gpu}; {missing}, so onnxruntime with its CUDA "
                               "provider")
    return "torch", f"CUDA device {gpu}; {missing}, and onnxruntime has no CUDA provider"


def _choose_cpu(model: SlimSegNet | None, meta: CheckpointMeta | None,
                cache_dir: str | os.PathLike[str] | None, upsample: str) -> tuple[str, str]:
    try:
        import_onnxruntime()
        import_onnx_exporter()
    except BackendUnavailableError as exc:
        return "torch", f"CPU; onnxruntime cannot be used ({str(exc).split(';')[0]})"
    if model is None or meta is None:
        model = SlimSegNet(ModelConfig()).eval()
        meta = random_meta(model.config)
    ms, cached = measure_cpu_backends(model, meta, cache_dir=cache_dir, upsample=upsample)
    name = min(ms, key=ms.get)  # type: ignore[arg-type]
    other = "torch" if name == "onnxruntime" else "onnxruntime"
    source = "cached measurement" if cached else "measured now"
    return name, (f"CPU; {name} measured faster than {other} on this machine "
                  f"({ms[name]:.1f} vs {ms[other]:.1f} ms, narrowest + widest width, "
                  f"{torch.get_num_threads()} threads; {source})")


def _measurement_key(config: ModelConfig, input_size: tuple[int, int], upsample: str
                     ) -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": module_version("torch"),
        "onnxruntime": module_version("onnxruntime"),
        "model": config.to_dict(),
        "input_size": list(input_size),
        "upsample": upsample,
    }


def measure_cpu_backends(model: SlimSegNet, meta: CheckpointMeta, *,
                         cache_dir: str | os.PathLike[str] | None = None,
                         upsample: str = "nearest", repeats: int = 5
                         ) -> tuple[dict[str, float], bool]:
    """({"torch": ms, "onnxruntime": ms}, whether it came from the cache).

    The figure per backend is the sum of the median latencies of the narrowest and the widest
    width, timed interleaved in turns of 4 runs (the first of each turn dropped, so one
    backend's spinning threads are not charged to the other). Cached in
    ``<cache_dir>/cpu_backend_choice.json``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / CPU_CHOICE_FILE
    key = _measurement_key(model.config, tuple(meta.input_size), upsample)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    entries = _read_choices(path)
    hit = entries.get(digest)
    if hit and set(hit.get("ms", {})) == {"torch", "onnxruntime"}:
        return {k: float(v) for k, v in hit["ms"].items()}, True

    start = time.perf_counter()
    widths = sorted({min(model.widths), max(model.widths)})
    torch_runners, _ = build_torch_runners(model, meta, "cpu", "fp32", upsample)
    with tempfile.TemporaryDirectory(prefix="slimseg_measure_") as scratch:
        ort_runners, _, _ = build_onnxruntime_runners(
            model, meta, device="cpu", precision="fp32", cache_dir=scratch, upsample=upsample,
            model_path=None, widths=widths,
        )
        frame = np.random.default_rng(0).integers(0, 256, (1, *meta.input_size, 3),
                                                  dtype=np.uint8)
        ms = {"torch": 0.0, "onnxruntime": 0.0}
        for width in widths:
            samples = time_interleaved({"torch": torch_runners[width],
                                        "onnxruntime": ort_runners[width]}, frame, repeats,
                                       block=4)
            for name, values in samples.items():
                ms[name] += percentile_ms(values, 50)
    entries[digest] = {
        "key": key,
        "ms": {k: round(v, 2) for k, v in ms.items()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
    try:
        _atomic_write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    except OSError as exc:  # a read-only cache must not stop the node; it just measures again
        logger.warning("cannot cache the CPU backend measurement in %s (%s)", path, exc)
    return ms, False


def _read_choices(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s); measuring again", path, exc)
        return {}
