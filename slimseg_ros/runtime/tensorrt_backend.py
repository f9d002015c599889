"""The ``tensorrt`` backend: one Torch-TensorRT engine per width, all resident (Jetson).

Per width: ``freeze(w)`` inside the uint8 pipeline (in the TensorRT-friendly form of
:class:`TensorRTPipeline`), cast to half for fp16, ``torch.export.export`` with the static input
(1, H, W, 3) uint8, then ``torch_tensorrt.compile(program, ir="dynamo", ...)`` with full
compilation required, ``min_block_size=1`` and a workspace cap. The compiled program is saved with
``torch_tensorrt.save`` into the engine cache and loaded with ``torch.export.load`` (after
``import torch_tensorrt``, which registers the TensorRT runtime ops).

Version notes (ros_anchors.md section 5): fp16 is obtained by casting module and input to half,
the only recipe that works from Torch-TensorRT 2.8 (JetPack 6.2) to 2.14; before 2.13 that needs
``use_explicit_typing=True`` (the default from 2.10; 2.13 removed the flag). Torch-TensorRT's own
engine cache is left off: its hash ignores weight shapes, so the widths of one slimmable network
can collide; our cache keys every width separately.

``torch_tensorrt`` cannot be installed on the development machines, so everything up to the
compile call (the exported program, the exact compile arguments, the cache flow) is a plain
function that tests exercise with a stand-in module.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..model.checkpoint import CheckpointMeta
from ..model.pipeline import SegmentationPipeline
from ..model.slimseg import SlimSegNet
from .cache import (ArtifactKey, ArtifactPlan, CacheOutcome, EngineCache, default_cache_dir,
                    model_fingerprint)
from .deps import cuda_device_name, import_torch_tensorrt, jetson_release, module_version
from .engine import Runner
from .torch_backend import pipeline_for_width

__all__ = [
    "DEFAULT_WORKSPACE_BYTES",
    "TensorRTPipeline",
    "TensorRTRunner",
    "build_tensorrt_engines",
    "build_tensorrt_runners",
    "compile_settings",
    "compile_width",
    "export_program",
    "resolve_cuda_device",
    "tensorrt_key",
    "tensorrt_toolchain",
]

# 1 GiB: enough tactics for this network; Jetson GPU memory is shared with the CPU and the rest
# of the robot, and an uncapped build can OOM there (a common complaint).
DEFAULT_WORKSPACE_BYTES = 1 << 30
GRAPH_REVISION = "1"


class TensorRTPipeline(nn.Module):
    """:class:`SegmentationPipeline` written with the casts TensorRT supports.

    TensorRT converts uint8 network I/O only to and from float/half, so the image is cast before
    the layout change and the labels go int -> float -> uint8 (exact: class ids < 256 are exact
    in half). Everything else is the same computation, so labels equal the torch backend's.
    """

    def __init__(self, pipeline: SegmentationPipeline) -> None:
        super().__init__()
        self.net = pipeline.net
        self.upsample = pipeline.upsample
        self.register_buffer("scale", pipeline.scale.detach().clone())
        self.register_buffer("shift", pipeline.shift.detach().clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[1], image.shape[2]
        dtype = self.scale.dtype
        x = image.to(dtype).permute(0, 3, 1, 2) * self.scale + self.shift
        logits = self.net(x)
        if self.upsample == "bilinear":
            logits = nn.functional.interpolate(logits, size=(h, w), mode="bilinear",
                                               align_corners=False)
            return logits.argmax(1)[0].to(dtype).to(torch.uint8)
        labels = logits.argmax(1)[0].to(dtype)
        rows = (torch.arange(h, device=image.device) * labels.shape[0]) // h
        cols = (torch.arange(w, device=image.device) * labels.shape[1]) // w
        return labels[rows][:, cols].to(torch.uint8)


def resolve_cuda_device(device: str) -> torch.device:
    """The CUDA device for ``auto | cuda[:N]`` (TensorRT has no CPU fallback: CPU is an error)."""
    if device == "cpu":
        raise ValueError("backend tensorrt runs on a CUDA device only; use backend onnxruntime "
                         "or torch on the CPU")
    if not torch.cuda.is_available():
        raise ValueError(
            f"backend tensorrt needs a CUDA device, but this torch ({torch.__version__}) sees "
            "none; on a Jetson install NVIDIA's torch wheel for your JetPack (docs/jetson.md)"
        )
    if device == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device must be auto or cuda[:N] for backend tensorrt, got {device!r}")
    return torch.device("cuda", int(index or 0))


def tensorrt_toolchain(device_index: int) -> dict[str, str]:
    """What a serialized engine depends on: engines are valid only for the exact TensorRT build,
    GPU (name and compute capability) and L4T release they were built with."""
    return {
        "torch": module_version("torch"),
        "torch_tensorrt": module_version("torch_tensorrt"),
        "tensorrt": module_version("tensorrt"),
        "gpu": cuda_device_name(device_index),
        "l4t": jetson_release(),
        "graph": GRAPH_REVISION,
        "slimseg_ros": __version__,
    }


def tensorrt_key(model_sha256: str, width: float, input_size: Sequence[int], precision: str,
                 upsample: str, device_index: int) -> ArtifactKey:
    return ArtifactKey("tensorrt", model_sha256, width, tuple(input_size), precision, upsample,
                       tensorrt_toolchain(device_index))


def _version_tuple(version: str) -> tuple[int, int]:
    parts = []
    for piece in version.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def compile_settings(precision: str, device: torch.device, *,
                     workspace_size: int = DEFAULT_WORKSPACE_BYTES,
                     timing_cache_path: str | os.PathLike[str] | None = None,
                     torch_tensorrt_version: str = "2.8.0") -> dict[str, Any]:
    """The exact keyword arguments of ``torch_tensorrt.compile`` besides module and inputs.

    Args:
        precision: ``fp32`` (TF32 disabled, so fp32 means fp32) or ``fp16`` (module and input
            already cast to half; explicit typing keeps TensorRT on the graph's types).
        device: the CUDA device to build for.
        workspace_size: builder workspace cap in bytes.
        timing_cache_path: where TensorRT keeps kernel timings between builds (rebuilding the
            other widths and later rebuilds are faster); default: Torch-TensorRT's, in /tmp.
        torch_tensorrt_version: decides whether ``use_explicit_typing`` still exists.
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    if workspace_size < (1 << 20):
        raise ValueError(f"workspace_size must be at least 1 MiB, got {workspace_size} bytes")
    settings: dict[str, Any] = {
        "ir": "dynamo",
        "device": device,
        "require_full_compilation": True,  # no PyTorch fallback segments: predictable latency
        "min_block_size": 1,
        "workspace_size": int(workspace_size),
        "disable_tf32": precision == "fp32",
        "hardware_compatible": False,  # fastest kernels; engines are rebuilt on each target
        "version_compatible": False,
        "cache_built_engines": False,  # its cache can mix up widths; ours keys each width
        "reuse_cached_engines": False,
    }
    if _version_tuple(torch_tensorrt_version) < (2, 13):
        settings["use_explicit_typing"] = True
    if timing_cache_path is not None:
        settings["timing_cache_path"] = str(timing_cache_path)
    return settings


def export_program(model: SlimSegNet, meta: CheckpointMeta, width: float, precision: str,
                   upsample: str, device: torch.device
                   ) -> tuple[torch.export.ExportedProgram, torch.Tensor]:
    """The exported program ``torch_tensorrt.compile`` receives for one width, and its example.

    The input stays uint8 for both precisions: the cast to half happens inside the graph, so a
    camera frame is uploaded at 1 byte per channel.
    """
    pipe = TensorRTPipeline(pipeline_for_width(model, meta, width, upsample)).eval().to(device)
    if precision == "fp16":
        pipe = pipe.half()
    example = torch.zeros((1, *meta.input_size, 3), dtype=torch.uint8, device=device)
    with torch.no_grad():
        program = torch.export.export(pipe, (example,), strict=False)
    return program, example


def compile_width(trt: ModuleType, program: torch.export.ExportedProgram, example: torch.Tensor,
                  settings: dict[str, Any]) -> Any:
    """``torch_tensorrt.compile`` with a static uint8 input spec; errors name the next step."""
    spec = trt.Input(tuple(example.shape), dtype=example.dtype)
    try:
        return trt.compile(program, inputs=[spec], **settings)
    except Exception as exc:
        raise RuntimeError(
            f"Torch-TensorRT could not compile the network fully ({type(exc).__name__}: {exc}); "
            "use backend onnxruntime (CUDA/TensorRT providers) or torch meanwhile, and report "
            "the Torch-TensorRT and JetPack versions"
        ) from exc


class TensorRTRunner:
    """A :data:`Runner` over a compiled module: uint8 host frame -> uint8 host labels."""

    def __init__(self, module: Any, device: torch.device) -> None:
        self.module = module
        self.device = device

    def __call__(self, image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).to(self.device, non_blocking=True)
            return self.module(x).cpu().numpy()


def build_tensorrt_engines(
    model: SlimSegNet,
    meta: CheckpointMeta,
    *,
    device: str = "auto",
    precision: str = "fp16",
    cache_dir: str | os.PathLike[str] | None = None,
    upsample: str = "nearest",
    model_path: str | os.PathLike[str] | None = None,
    widths: Sequence[float] | None = None,
    workspace_size: int = DEFAULT_WORKSPACE_BYTES,
    force: bool = False,
    trt: ModuleType | None = None,
    target: torch.device | None = None,
) -> tuple[dict[float, Runner], torch.device, dict[float, CacheOutcome], list[str]]:
    """One engine per width from the engine cache, built on a miss (minutes per width).

    Args:
        trt, target: a stand-in ``torch_tensorrt`` module and device, for tests only; normally
            the real module is imported and the CUDA device resolved from ``device``.

    Returns:
        (width -> runner, device, width -> cache outcome, notes: one line per width).
    """
    trt = trt if trt is not None else import_torch_tensorrt()
    dev = target if target is not None else resolve_cuda_device(device)
    index = dev.index or 0
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = EngineCache(root)
    sha = model_fingerprint(model, model_path)
    toolchain = tensorrt_toolchain(index)
    timing = root / "tensorrt" / _safe(f"timing_{toolchain['tensorrt']}_{toolchain['gpu']}.bin")
    settings = compile_settings(precision, dev, workspace_size=workspace_size,
                                timing_cache_path=timing,
                                torch_tensorrt_version=str(getattr(trt, "__version__", "0")))
    notes = [f"tensorrt: engine cache {root}; TensorRT {toolchain['tensorrt']} on "
             f"{toolchain['gpu']}; a miss builds the engine (minutes per width)"]

    def plan(width: float) -> ArtifactPlan:
        def build(tmp: Path) -> None:
            timing.parent.mkdir(parents=True, exist_ok=True)  # only when building
            program, example = export_program(model, meta, width, precision, upsample, dev)
            compiled = compile_width(trt, program, example, settings)
            trt.save(compiled, str(tmp), output_format="exported_program", inputs=[example])

        def load(path: Path) -> Any:
            return torch.export.load(str(path)).module()

        return tensorrt_key(sha, width, meta.input_size, precision, upsample, index), build, load

    modules, outcomes, built = cache.get_or_build_widths(
        model.widths if widths is None else widths, plan, "tensorrt", force=force)
    runners: dict[float, Runner] = {w: TensorRTRunner(m, dev) for w, m in modules.items()}
    notes += built
    return runners, dev, outcomes, notes


def build_tensorrt_runners(model: SlimSegNet, meta: CheckpointMeta, **options: Any
                           ) -> tuple[dict[float, Runner], str, list[str]]:
    """The registry's builder: :func:`build_tensorrt_engines` as (runners, device, notes)."""
    runners, dev, _, notes = build_tensorrt_engines(model, meta, **options)
    return runners, str(dev), notes


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
