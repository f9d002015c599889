"""Scores grouped by width, with the matrices and latencies the bag reports plot.

``slimseg bag eval`` (offline and replay) feeds (prediction, ground truth) pairs into a
:class:`WidthScores`. It uses the metric classes of :mod:`slimseg_ros.eval.metrics` exactly as
:func:`slimseg_ros.eval.scoring.score_engine` (``slimseg eval``) does, so both give the same
numbers for the same frames; it also keeps confusion matrices, per-width latencies and an
overall total across widths, which a replay needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..runtime.timing import percentile_ms
from ..widths import width_key
from .metrics import BoundaryF1Meter, ConfusionMatrix, interior_mask

__all__ = ["WidthScores", "clean_labels"]


def clean_labels(labels: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Ground truth with every value that is not a class id turned into ``ignore_index``.

    Bags recorded elsewhere may mark void with their own value (CamVid's raw 11, say); such
    pixels are left out instead of aborting the evaluation.
    """
    labels = np.asarray(labels)
    bad = labels >= num_classes
    if not bad.any():
        return labels
    out = labels.copy()
    out[bad] = ignore_index
    return out


# pixels farther than this from a ground-truth border count as region interior
INTERIOR_BAND_PX = 5


@dataclass
class _Meters:
    confusion: ConfusionMatrix
    boundary: BoundaryF1Meter
    interior: ConfusionMatrix  # the confusion of region-interior pixels only
    frames: int = 0
    latency_s: list[float] = field(default_factory=list)


class WidthScores:
    """Confusion matrix, boundary F1 and latencies per width, and their total.

    Each frame is scored once, into the bucket of its width; :attr:`overall` merges the
    buckets (a replay's result over all answers, whatever width made them).

    Args:
        class_names: one name per class id.
        ignore_index: ground-truth value of pixels to leave out.
        boundary_tolerance: boundary F1 matching distance in pixels.
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int = 255,
                 boundary_tolerance: float = 2) -> None:
        if not class_names:
            raise ValueError("class_names must name at least one class")
        self.class_names = tuple(str(n) for n in class_names)
        self.ignore_index = int(ignore_index)
        self.boundary_tolerance = boundary_tolerance
        self._by_width: dict[float, _Meters] = {}
        self._unknown = self._new()  # answers whose width is not known
        self._overall: _Meters | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def widths(self) -> tuple[float, ...]:
        """Widths that have been scored, ascending."""
        return tuple(sorted(self._by_width))

    @property
    def overall(self) -> _Meters:
        """Every scored frame together (merged on demand)."""
        if self._overall is None:
            total = self._new()
            for m in [*self._by_width.values(), self._unknown]:
                total.confusion.merge(m.confusion)
                total.boundary.merge(m.boundary)
                total.interior.merge(m.interior)
                total.frames += m.frames
                total.latency_s.extend(m.latency_s)
            self._overall = total
        return self._overall

    def _new(self) -> _Meters:
        return _Meters(ConfusionMatrix(self.num_classes, self.ignore_index),
                       BoundaryF1Meter(self.boundary_tolerance, self.ignore_index),
                       ConfusionMatrix(self.num_classes, self.ignore_index))

    def add(self, width: float | None, pred: np.ndarray, target: np.ndarray,
            latency_s: float | None = None) -> None:
        """Score one frame predicted at ``width``.

        Args:
            width: the width that produced ``pred`` (None: unknown, counted overall only).
            pred: HxW predicted class ids.
            target: HxW ground truth; values that are not class ids are ignored.
            latency_s: how long the prediction took (optional).
        """
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ "
                             f"in size")
        target = clean_labels(target, self.num_classes, self.ignore_index)
        m = self._unknown if width is None else self._by_width.setdefault(float(width),
                                                                          self._new())
        m.confusion.update(pred, target)
        m.boundary.update(pred, target)
        inside = interior_mask(target, INTERIOR_BAND_PX, self.ignore_index)
        m.interior.update(pred, np.where(inside, target, self.ignore_index).astype(target.dtype))
        m.frames += 1
        if latency_s is not None and math.isfinite(latency_s):
            m.latency_s.append(float(latency_s))
        self._overall = None

    def confusion(self, width: float | None = None) -> np.ndarray:
        """The confusion matrix (rows truth, columns prediction) of one width or overall."""
        meters = self.overall if width is None else self._by_width[float(width)]
        return meters.confusion.matrix.copy()

    def summary(self, width: float | None = None) -> dict:
        """``{"miou", "pixel_acc", "boundary_f1", "interior_miou", "per_class_iou", "frames",
        "latency_ms_p50", "latency_ms_p95"}`` of one width (None: overall).

        ``interior_miou`` scores only pixels farther than :data:`INTERIOR_BAND_PX` from a
        ground-truth border."""
        m = self.overall if width is None else self._by_width[float(width)]
        doc = m.confusion.summary(self.class_names)
        f1 = m.boundary.f1
        doc["boundary_f1"] = None if math.isnan(f1) else float(f1)
        interior = m.interior.miou()
        doc["interior_miou"] = None if math.isnan(interior) else interior
        doc["frames"] = m.frames
        doc["latency_ms_p50"] = percentile_ms(m.latency_s, 50)
        doc["latency_ms_p95"] = percentile_ms(m.latency_s, 95)
        # same key order as `slimseg eval`
        order = ("miou", "pixel_acc", "boundary_f1", "interior_miou", "per_class_iou", "frames",
                 "latency_ms_p50", "latency_ms_p95")
        return {k: doc[k] for k in order}

    def per_width(self) -> dict[str, dict]:
        """``{"0.25": summary, ...}`` for every scored width."""
        return {width_key(w): self.summary(w) for w in self.widths}
