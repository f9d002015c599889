"""Score an engine on labelled frames, per width: the one scoring path every command shares.

``slimseg eval``, the per-width validation during training and the offline rosbag evaluation all
call :func:`score_engine`, so their numbers agree by construction.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, Sequence

import cv2
import numpy as np

from ..model.config import width_key
from .metrics import BoundaryF1Meter, ConfusionMatrix

__all__ = ["score_engine", "WidthScorer", "Segmenter"]


class Segmenter(Protocol):
    def infer(self, image: np.ndarray, width: float) -> np.ndarray: ...


class WidthScorer:
    """Confusion matrix + boundary F1 of one width, fed prediction/ground-truth pairs."""

    def __init__(self, num_classes: int, ignore_index: int = 255, tolerance_px: float = 2) -> None:
        self.confusion = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.boundary = BoundaryF1Meter(tolerance_px=tolerance_px, ignore_index=ignore_index)
        self.images = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        if pred.shape != target.shape:  # ground truth at another resolution: compare at its size
            pred = cv2.resize(pred, (target.shape[1], target.shape[0]),
                              interpolation=cv2.INTER_NEAREST)
        self.confusion.update(pred, target)
        self.boundary.update(pred, target)
        self.images += 1

    def result(self, class_names: Sequence[str]) -> dict[str, Any]:
        per_class = self.confusion.per_class_iou()
        return {
            "miou": float(self.confusion.miou()),
            "pixel_acc": float(self.confusion.pixel_accuracy()),
            "boundary_f1": float(self.boundary.f1),
            "per_class_iou": {str(n): (None if np.isnan(v) else float(v))
                              for n, v in zip(class_names, per_class)},
        }


def score_engine(
    engine: Segmenter,
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    widths: Sequence[float],
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    boundary_tolerance: float = 2,
    on_sample: Callable[[], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Run every width on every (RGB uint8, uint8 labels) sample; per-width metrics and count.

    Returns ``({"0.25": {"miou", "pixel_acc", "boundary_f1", "per_class_iou"}, ...}, images)``.
    """
    scorers = {w: WidthScorer(len(class_names), ignore_index, boundary_tolerance) for w in widths}
    count = 0
    for image, label in samples:
        for width, scorer in scorers.items():
            scorer.update(engine.infer(image, width), label)
        count += 1
        if on_sample is not None:
            on_sample()
    return {width_key(w): s.result(class_names) for w, s in scorers.items()}, count
