"""Backend registry: how each backend turns the frozen widths into runners, and ``auto``'s choice.

``auto`` prefers, on a GPU, compiled engines to eager torch, the most device-specific first:
``tensorrt`` (torch_tensorrt importable and a CUDA device), ``onnxruntime`` on CUDA (its CUDA
provider and a CUDA device), ``torch`` on CUDA; on a CPU it takes whichever of ``onnxruntime`` and
``torch`` *measured* faster on this machine, with the model and input size in use. That measurement
(both backends built, the narrowest and widest widths timed interleaved) takes a few seconds once,
and is cached per CPU, thread count, library versions, architecture and input size in
``cpu_backend_choice.json`` in the engine cache directory, with the load average it was taken
under. A cached record is used again only while it is plausible (:func:`implausible_record`: the
chosen backend still runs near its recorded time, and the record was not taken under a load that
has since gone); otherwise it is measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

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
    "cpu_record",
    "implausible_record",
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
                   = None, upsample: str = "nearest", model_path: str | os.PathLike[str] | None
                   = None, force: bool = False) -> tuple[str, str]:
    """The backend ``auto`` picks for ``device`` and ``precision``, with the reason it gives.

    Raises:
        ValueError: a GPU is requested (a ``cuda`` device, fp16) and none is visible.

    Args:
        model, meta: the model to measure on a CPU, ``meta.input_size`` being the size it runs
            at (what :func:`~slimseg_ros.runtime.loader.load_engine` passes); without them a
            randomly initialised default-architecture model at the default input size stands in.
        cache_dir: where the CPU measurement is cached (default: the engine cache).
        model_path: the checkpoint file; the measurement's ONNX files then go to the engine
            cache, where the engine reuses them.
        force: measure again even if a record is cached.
    """
    if device != "cpu" and torch.cuda.is_available():
        return _choose_gpu(device)
    # Refused here, once: a backend chosen only to refuse the same request says it twice.
    if device != "auto" and device != "cpu":
        raise ValueError(f"device {device!r} requested, but no CUDA device is visible "
                         "(use device auto or cpu)")
    if precision == "fp16":
        raise ValueError("precision fp16 needs a CUDA device, and none is visible (use fp32)")
    return _choose_cpu(model, meta, cache_dir, upsample, model_path, force)


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
                cache_dir: str | os.PathLike[str] | None, upsample: str,
                model_path: str | os.PathLike[str] | None, force: bool) -> tuple[str, str]:
    try:
        import_onnxruntime()
        import_onnx_exporter()
    except BackendUnavailableError as exc:
        return "torch", f"CPU; onnxruntime cannot be used ({str(exc).split(';')[0]})"
    if model is None or meta is None:
        model = SlimSegNet(ModelConfig()).eval()
        meta = random_meta(model.config)
    ms, cached = measure_cpu_backends(model, meta, cache_dir=cache_dir, upsample=upsample,
                                      model_path=model_path, force=force)
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


def _record_path(cache_dir: str | os.PathLike[str] | None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / CPU_CHOICE_FILE


def _record_digest(model: SlimSegNet, meta: CheckpointMeta, upsample: str) -> str:
    key = _measurement_key(model.config, tuple(meta.input_size), upsample)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cpu_record(model: SlimSegNet, meta: CheckpointMeta, *,
               cache_dir: str | os.PathLike[str] | None = None, upsample: str = "nearest"
               ) -> dict[str, Any] | None:
    """The cached CPU measurement for this model, input size and machine setting, or None.

    Keys: ``ms`` ({"torch": ms, "onnxruntime": ms}), ``loadavg`` (1/5/15 min when measured),
    ``measured_at`` (UTC), ``seconds`` (how long measuring took).
    """
    hit = _read_choices(_record_path(cache_dir)).get(_record_digest(model, meta, upsample))
    if hit and set(hit.get("ms", {})) == {"torch", "onnxruntime"}:
        return hit
    return None


def implausible_record(record: Mapping[str, Any], chosen: str, now_ms: float,
                       load_now: float, cores: int) -> str | None:
    """Why a cached CPU measurement should not be trusted any more, or None if it may.

    Args:
        record: a :func:`cpu_record`.
        chosen: the backend the record chose.
        now_ms: that backend's time now, measured the same way (narrowest + widest width,
            medians), e.g. from the engine's warm-up.
        load_now: the 1-minute load average now.
        cores: CPU cores of the machine.

    A record is implausible when the chosen backend now runs at less than half or more than
    twice its recorded time (the machine, or its load, is not what it was), or when it was
    taken under a load of at least one process per core that has since halved (a busy moment
    decided it). Either way it is measured again, and the new record replaces it.
    """
    recorded = float(record["ms"][chosen])
    ratio = now_ms / recorded if recorded > 0 else float("inf")
    if not 0.5 <= ratio <= 2.0:
        return (f"{chosen} was recorded at {recorded:.1f} ms and takes {now_ms:.1f} ms now "
                f"(narrowest + widest width)")
    load_then = (record.get("loadavg") or [None])[0]
    if load_then is not None and cores > 0 and load_then / cores >= 1.0 and (
            load_now <= 0.5 * load_then):
        return (f"it was measured at load average {load_then:.1f} on {cores} cores, "
                f"{load_now:.1f} now")
    return None


def measure_cpu_backends(model: SlimSegNet, meta: CheckpointMeta, *,
                         cache_dir: str | os.PathLike[str] | None = None,
                         upsample: str = "nearest", repeats: int = 5,
                         model_path: str | os.PathLike[str] | None = None,
                         force: bool = False) -> tuple[dict[str, float], bool]:
    """({"torch": ms, "onnxruntime": ms}, whether it came from the cache).

    The figure per backend is the sum of the median latencies of the narrowest and the widest
    width, timed interleaved in turns of 4 runs (the first of each turn dropped, so one
    backend's spinning threads are not charged to the other). Cached in
    ``<cache_dir>/cpu_backend_choice.json`` (``force``: measure again and replace the record).
    With ``model_path`` the ONNX files exported for it go to the engine cache (the engine built
    next reuses them); without, to a scratch directory.
    """
    path = _record_path(cache_dir)
    digest = _record_digest(model, meta, upsample)
    entries = _read_choices(path)
    hit = None if force else cpu_record(model, meta, cache_dir=cache_dir, upsample=upsample)
    if hit is not None:
        return {k: float(v) for k, v in hit["ms"].items()}, True

    start = time.perf_counter()
    key = _measurement_key(model.config, tuple(meta.input_size), upsample)
    widths = sorted({min(model.widths), max(model.widths)})
    torch_runners, _ = build_torch_runners(model, meta, "cpu", "fp32", upsample)
    with tempfile.TemporaryDirectory(prefix="slimseg_measure_") as scratch:
        ort_runners, _, _ = build_onnxruntime_runners(
            model, meta, device="cpu", precision="fp32", upsample=upsample,
            cache_dir=path.parent if model_path is not None else scratch,
            model_path=model_path, widths=widths,
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
