"""The ``torch`` backend: each width's frozen module (BN folded) wrapped in the uint8 pipeline."""

from __future__ import annotations

import numpy as np
import torch

from ..model.checkpoint import CheckpointMeta
from ..model.pipeline import SegmentationPipeline
from ..model.slimseg import SlimSegNet
from .engine import Runner

__all__ = ["build_torch_runners", "resolve_torch_device", "torch_runner"]


def resolve_torch_device(device: str) -> torch.device:
    """``auto`` -> first CUDA device if any, else CPU; explicit CUDA without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested, but this torch has no usable CUDA device")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return resolved


class _TorchRunner:
    def __init__(self, pipeline: torch.nn.Module, device: torch.device) -> None:
        self.pipeline = pipeline
        self.device = device

    def __call__(self, image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).to(self.device, non_blocking=True)
            return self.pipeline(x).cpu().numpy()


def pipeline_for_width(model: SlimSegNet, meta: CheckpointMeta, width: float,
                       upsample: str = "nearest") -> SegmentationPipeline:
    """The deployable graph of one width: uint8 (1,H,W,3) -> uint8 (H,W), in eval mode."""
    return SegmentationPipeline(model.freeze(width), meta.mean, meta.std, upsample).eval()


def build_torch_runners(model: SlimSegNet, meta: CheckpointMeta, device: str = "auto",
                        precision: str = "fp32",
                        upsample: str = "nearest") -> tuple[dict[float, Runner], str]:
    """One runner per width; returns them with the device actually used."""
    dev = resolve_torch_device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use fp32 on the CPU")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    runners = {width: torch_runner(pipeline_for_width(model, meta, width, upsample), dev,
                                   precision)
               for width in model.widths}
    return runners, str(dev)


def torch_runner(pipeline: torch.nn.Module, device: torch.device,
                 precision: str = "fp32") -> Runner:
    """``pipeline`` (uint8 image in, uint8 labels out) on ``device`` in ``precision``, as a
    runner: what every torch width runs, and what ``slimseg bench`` times its references as."""
    # channels-last: the frozen MobileNet runs markedly faster at narrow widths on CPUs
    pipe = pipeline.eval().to(device, memory_format=torch.channels_last)
    if precision == "fp16":
        pipe = pipe.half()
    return _TorchRunner(pipe, device)
