"""The ``onnxruntime`` backend: each width's uint8 pipeline exported to ONNX, run by ONNX Runtime.

Export uses ``torch.onnx.export(..., dynamo=True)`` on the same :class:`SegmentationPipeline`
the torch backend runs (normalisation, argmax at logit resolution and the nearest label
upsample are inside the graph), with a static (1, H, W, 3) uint8 input named ``image`` and a
(H, W) uint8 output named ``labels``. Artifacts live in the engine cache
(:mod:`slimseg_ros.runtime.cache`).

Execution providers: the CPU provider here; on a GPU the TensorRT provider when the build has it
(its engines go to a cache directory keyed by the ONNX file, TensorRT, ONNX Runtime and GPU),
then CUDA, then CPU for anything left.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..model.checkpoint import CheckpointMeta
from ..model.slimseg import SlimSegNet
from .cache import ArtifactKey, ArtifactPlan, EngineCache, default_cache_dir, model_fingerprint
from .deps import (
    cuda_device_name,
    import_onnx_exporter,
    import_onnxruntime,
    module_version,
    onnxruntime_providers,
)
from .engine import Runner
from .torch_backend import pipeline_for_width

__all__ = [
    "ONNX_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "build_onnxruntime_runners",
    "export_onnx",
    "onnx_builder",
    "onnx_key",
    "onnx_toolchain",
    "resolve_ort_device",
    "session_providers",
    "make_session",
    "OrtRunner",
]

logger = logging.getLogger(__name__)

# 18 is what torch 2.13's exporter builds natively (no version conversion), and what the
# ONNX Runtime (>= 1.14) and TensorRT 10 builds on JetPack 6 accept.
ONNX_OPSET = 18
# Bump when the exported graph changes in a way the versions below do not capture.
GRAPH_REVISION = "1"
INPUT_NAME = "image"
OUTPUT_NAME = "labels"
TRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
TRT_WORKSPACE_BYTES = 1 << 30  # cap: Jetson GPU memory is shared with the CPU
# Idle intra-op threads spin briefly before sleeping: lower latency, some CPU burnt that other
# nodes could use. Measured in docs/log/backends.md; module-level so experiments can flip it.
ALLOW_SPINNING = True
# Size of ONNX Runtime's process-wide intra-op pool once this module created it; -1 when it
# cannot be used (an older onnxruntime, or someone else created it first with unknown size).
_shared_pool_threads: int | None = None


def onnx_toolchain() -> dict[str, str]:
    """What an ONNX artifact depends on besides the model: the exporter, opset and graph form.

    The ``.onnx`` file does not depend on the GPU or the ONNX Runtime version (any runtime that
    supports the opset runs it); the TensorRT provider's own engines do, and are cached
    separately under a directory keyed by those (see :func:`session_providers`).
    """
    return {
        "torch": module_version("torch"),
        "onnx": module_version("onnx"),
        "onnxscript": module_version("onnxscript"),
        "opset": str(ONNX_OPSET),
        "graph": GRAPH_REVISION,
        "slimseg_ros": __version__,
    }


def onnx_key(model_sha256: str, width: float, input_size: Sequence[int], precision: str,
             upsample: str) -> ArtifactKey:
    return ArtifactKey("onnx", model_sha256, width, tuple(input_size), precision, upsample,
                       onnx_toolchain())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs warnings about optional torchvision ops; they are noise here."""
    noisy = logging.getLogger("torch.onnx")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        noisy.setLevel(level)


def export_onnx(module: nn.Module, example: torch.Tensor, path: str | os.PathLike[str],
                input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME) -> None:
    """Export ``module`` with a static input shape (that of ``example``) to one ONNX file.

    Weights are embedded (no external data file), so the artifact is one file to hash and move.
    """
    import_onnx_exporter()
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(), (example,), dynamo=True, opset_version=ONNX_OPSET, verbose=False,
            input_names=[input_name], output_names=[output_name], external_data=False,
        )
        if program is None:  # only the legacy exporter returns None
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
        program.save(str(path), external_data=False)


def onnx_builder(model: SlimSegNet, meta: CheckpointMeta, width: float, precision: str,
                 upsample: str) -> Callable[[Path], None]:
    """A function that writes the ONNX artifact of one width to the path it is given."""

    def build(path: Path) -> None:
        pipe = pipeline_for_width(model, meta, width, upsample)
        example = torch.zeros((1, *meta.input_size, 3), dtype=torch.uint8)
        export_onnx(pipe.half() if precision == "fp16" else pipe, example, path)

    return build


def resolve_ort_device(device: str, providers: Sequence[str] | None = None) -> tuple[str, int]:
    """("cpu" | "cuda", device index) for ``auto | cpu | cuda[:N]``.

    ``auto`` takes the GPU only when this ONNX Runtime build has the CUDA provider and a CUDA
    device really exists; an explicit ``cuda`` without the provider is an error.
    """
    providers = onnxruntime_providers() if providers is None else list(providers)
    if device == "cpu":
        return "cpu", 0
    if device == "auto":
        usable = CUDA_PROVIDER in providers and torch.cuda.is_available()
        return ("cuda", 0) if usable else ("cpu", 0)
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if CUDA_PROVIDER not in providers:
        raise ValueError(
            f"device {device!r} requested, but this onnxruntime build has no {CUDA_PROVIDER} "
            f"(it offers {', '.join(providers) or 'nothing'}); install onnxruntime-gpu"
        )
    return "cuda", int(index or 0)


def session_providers(kind: str, index: int, precision: str, available: Sequence[str],
                      trt_cache_dir: Path | None) -> list[Any]:
    """The provider list for a session, most preferred first, with deliberate options."""
    if kind == "cpu":
        return [CPU_PROVIDER]
    providers: list[Any] = []
    if TRT_PROVIDER in available and trt_cache_dir is not None:
        providers.append((TRT_PROVIDER, {
            "device_id": index,
            "trt_fp16_enable": precision == "fp16",
            "trt_max_workspace_size": TRT_WORKSPACE_BYTES,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(trt_cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(trt_cache_dir),
        }))
    providers.append((CUDA_PROVIDER, {"device_id": index}))
    providers.append(CPU_PROVIDER)
    return providers


def make_session(path: str | os.PathLike[str], kind: str = "cpu", index: int = 0,
                 precision: str = "fp32", threads: int | None = None,
                 trt_cache_dir: Path | None = None, spinning: bool | None = None) -> Any:
    """An ``InferenceSession`` with graph optimisation ALL and an explicit thread count.

    Args:
        threads: intra-op threads; default ``torch.get_num_threads()`` so both CPU backends
            use the same, deliberately chosen number.
        spinning: let idle intra-op threads spin between parallel sections (lower latency,
            costs CPU that other nodes on the robot may want); default :data:`ALLOW_SPINNING`.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    threads = int(threads or torch.get_num_threads())
    spin = ALLOW_SPINNING if spinning is None else spinning
    if spin and kind == "cpu" and _use_shared_pool(ort, threads):
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # errors only: the providers' info lines would drown the log
    providers = session_providers(kind, index, precision, ort.get_available_providers(),
                                  trt_cache_dir)
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    if kind == "cuda" and session.get_providers()[0] not in (TRT_PROVIDER, CUDA_PROVIDER):
        raise RuntimeError(
            "ONNX Runtime could not start its CUDA provider and fell back to the CPU; check that "
            "the CUDA and cuDNN libraries match this onnxruntime-gpu build"
        )
    return session


def _use_shared_pool(ort: Any, threads: int) -> bool:
    """Whether a session can run on the process-wide thread pool of ``threads`` threads.

    One session per width each with its own pool made the first frame after a width switch
    much slower than the steady state (the previous width's threads were still spinning and
    the new width's were asleep; docs/log/benchmarks.md, ONNX Runtime backend). One shared pool
    removes that cost. ONNX Runtime allows that pool to be sized once per process, so an engine
    that asks for another size gets its own pool, as before.
    """
    global _shared_pool_threads
    if _shared_pool_threads is None:
        try:
            ort.set_global_thread_pool_sizes(threads, 1)
            _shared_pool_threads = threads
        except Exception:  # an older onnxruntime (AttributeError) or ORT's own Fail, not a bug
            _shared_pool_threads = -1
    return _shared_pool_threads == threads


class OrtRunner:
    """A :data:`Runner` over one session: (1, H, W, 3) uint8 -> (H, W) uint8."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: image})[0]


_TEMP_DIRS: list[str] = []


def _temporary_cache_dir() -> Path:
    """A per-process cache for randomly initialised models (their artifacts are never reused)."""
    path = tempfile.mkdtemp(prefix="slimseg_engines_")
    if not _TEMP_DIRS:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _TEMP_DIRS])
    _TEMP_DIRS.append(path)
    return Path(path)


def build_onnxruntime_runners(
    model: SlimSegNet,
    meta: CheckpointMeta,
    *,
    device: str = "auto",
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
    upsample: str = "nearest",
    model_path: str | os.PathLike[str] | None = None,
    widths: Sequence[float] | None = None,
    threads: int | None = None,
    force: bool = False,
) -> tuple[dict[float, Runner], str, list[str]]:
    """One ONNX Runtime session per width, built from the engine cache (exported on a miss).

    Returns:
        (width -> runner, device used, notes: providers and one cache line per width).
    """
    import_onnxruntime()
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    available = onnxruntime_providers()
    kind, index = resolve_ort_device(device, available)
    if precision == "fp16" and kind != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use fp32 on the CPU")
    if model_path is None and cache_dir is None:
        root = _temporary_cache_dir()
        notes = ["onnxruntime: no checkpoint file, so artifacts go to a temporary directory"]
    else:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        notes = [f"onnxruntime: engine cache {root}"]
    cache = EngineCache(root)
    sha = model_fingerprint(model, model_path)
    size = tuple(meta.input_size)

    def plan(width: float) -> ArtifactPlan:
        key = onnx_key(sha, width, size, precision, upsample)
        trt_dir = _trt_provider_dir(root, key, available, kind, index, precision)

        def load(path: Path) -> Any:
            return make_session(path, kind, index, precision, threads, trt_dir)

        return key, onnx_builder(model, meta, width, precision, upsample), load

    sessions, _, built = cache.get_or_build_widths(
        model.widths if widths is None else widths, plan, "onnxruntime", force=force)
    runners: dict[float, Runner] = {w: OrtRunner(s) for w, s in sessions.items()}
    notes += built
    first = next(iter(runners.values()), None)
    if first is not None:
        notes.append("onnxruntime providers: " + ", ".join(first.session.get_providers()))
    return runners, "cpu" if kind == "cpu" else f"cuda:{index}", notes


def _trt_provider_dir(root: Path, key: ArtifactKey, available: Sequence[str], kind: str,
                      index: int, precision: str) -> Path | None:
    """Cache directory for the TensorRT provider's engines of one ONNX artifact.

    ONNX Runtime names its cached engines after the model's graph, not its weights, and does not
    check versions on load; so the directory is keyed by everything an engine depends on (the
    artifact's key digest covers the weights). Stale directories are simply never used again.
    """
    if kind != "cuda" or TRT_PROVIDER not in available:
        return None
    tag = "_".join([
        key.digest[:16], precision, f"trt{module_version('tensorrt')}",
        f"ort{module_version('onnxruntime')}", cuda_device_name(index),
    ])
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in tag)
    path = root / "onnxruntime-trt" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path
