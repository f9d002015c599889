"""Per-width validation with the deployment path: frozen width, uint8 image in, labels out.

Validating through the torch runtime (argmax at logit resolution, nearest upsample) reports the
accuracy the robot will actually get, and through :func:`~slimseg_ros.eval.scoring.score_engine`,
the same scoring code as ``slimseg eval``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..eval.scoring import score_engine
from ..model.checkpoint import CheckpointMeta
from ..model.slimseg import SlimSegNet
from ..runtime.engine import SegmentationEngine
from ..runtime.torch_backend import build_torch_runners

__all__ = ["torch_engine", "validate"]


def torch_engine(model: SlimSegNet, meta: CheckpointMeta, widths: Sequence[float],
                 device: str = "cpu") -> SegmentationEngine:
    """The deployment path for ``widths`` of ``model`` (fp32 torch, the model's input size)."""
    runners, used = build_torch_runners(model, meta, device=device)
    return SegmentationEngine({w: runners[w] for w in widths}, meta, "torch", used, "fp32",
                              meta.input_size)


@torch.no_grad()
def validate(model: SlimSegNet, dataset: Any, widths: Sequence[float], meta: CheckpointMeta, *,
             max_images: int = 0, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """mIoU, pixel accuracy, boundary F1 and per-class IoU for each width (keys like ``"0.5"``).

    ``dataset.load(i)`` returns ``(HxWx3 uint8 RGB, HxW uint8 labels)``; images are resized to
    ``meta.input_size`` by the engine and predictions come back at the image's size.
    """
    engine = torch_engine(model, meta, widths, device)
    n = len(dataset) if not max_images else min(len(dataset), max_images)
    samples = (dataset.load(i) for i in range(n))
    results, _ = score_engine(engine, samples, widths, meta.class_names,
                              ignore_index=meta.ignore_index)
    return results
