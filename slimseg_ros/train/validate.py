"""Per-width validation with the deployment path: frozen width, uint8 image in, labels out.

Validating through :class:`~slimseg_ros.model.SegmentationPipeline` (argmax at logit resolution,
nearest upsample) reports the accuracy the robot will actually get, not that of a nicer
post-processing nobody deploys.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from ..eval.metrics import BoundaryF1Meter, ConfusionMatrix
from ..model.pipeline import SegmentationPipeline
from ..model.slimseg import SlimSegNet

__all__ = ["validate"]


@torch.no_grad()
def validate(
    model: SlimSegNet,
    dataset: object,
    widths: Sequence[float],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: tuple[int, int],
    max_images: int = 0,
    upsample: str = "nearest",
    boundary_tolerance: int = 2,
    device: str | torch.device = "cpu",
) -> dict[float, dict[str, object]]:
    """mIoU, pixel accuracy, boundary F1 and per-class IoU for each width.

    ``dataset.load(i)`` must return ``(HxWx3 uint8 RGB, HxW uint8 labels)``; images are resized to
    ``input_size`` for the network and predictions resized back (nearest) to the label size.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if max_images:
        n = min(n, max_images)
    k = model.config.num_classes
    ignore = int(getattr(dataset, "ignore_index", 255))
    pipes = {
        w: SegmentationPipeline(model.freeze(w), mean, std, upsample).to(device).eval()
        for w in widths
    }
    cms = {w: ConfusionMatrix(k, ignore_index=ignore) for w in widths}
    bfs = {w: BoundaryF1Meter(tolerance_px=boundary_tolerance, ignore_index=ignore) for w in widths}
    h, w_ = input_size
    for i in range(n):
        image, label = dataset.load(i)  # type: ignore[attr-defined]
        if image.shape[:2] != (h, w_):
            image = cv2.resize(image, (w_, h), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).to(device)
        for width, pipe in pipes.items():
            pred = pipe(x).cpu().numpy()
            if pred.shape != label.shape:
                pred = cv2.resize(pred, (label.shape[1], label.shape[0]),
                                  interpolation=cv2.INTER_NEAREST)
            cms[width].update(pred, label)
            bfs[width].update(pred, label)
    names = getattr(getattr(dataset, "class_spec", None), "names", None) or [str(c) for c in range(k)]
    results: dict[float, dict[str, object]] = {}
    for width in widths:
        per_class = cms[width].per_class_iou()
        results[width] = {
            "miou": float(cms[width].miou()),
            "pixel_acc": float(cms[width].pixel_accuracy()),
            "boundary_f1": float(bfs[width].f1),
            "per_class_iou": {str(nm): (None if np.isnan(v) else float(v))
                              for nm, v in zip(names, per_class)},
        }
    return results
