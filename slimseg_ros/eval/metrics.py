"""Segmentation metrics in numpy: confusion matrix, IoU, pixel accuracy, boundary F1.

No torch here, so evaluation of recorded bags and ONNX/TensorRT outputs needs none. All values
are fractions in [0, 1] (NaN where a quantity is undefined, see each function).

Conventions:
    * Confusion matrix rows are ground truth, columns are predictions.
    * Pixels whose ground truth is ``ignore_index`` are left out of every metric.
    * IoU of class c = TP / (TP + FP + FN). It is NaN when the class occurs neither in the ground
      truth nor in the predictions (union 0); mIoU is the mean over the other classes (the
      usual ``nanmean``, as in torchvision's references and mmsegmentation). A class that is
      predicted but absent from the ground truth therefore counts with IoU 0.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


def _as_label_array(array: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class ids, got dtype {arr.dtype}")
    return arr


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` confusion matrix over many images.

    Args:
        num_classes: Number of classes (ids ``0..num_classes-1``).
        ignore_index: Ground-truth value of pixels to leave out.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.matrix[:] = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one image or a batch (any matching shapes) of predictions and ground truth.

        Args:
            pred: Predicted class ids.
            target: Ground-truth class ids; ``ignore_index`` marks pixels to skip.

        Raises:
            ValueError: Shapes differ, or a non-ignored value is outside ``0..num_classes-1``.
        """
        pred = _as_label_array(pred, "pred")
        target = _as_label_array(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {pred.shape} differs from target shape {target.shape}")
        valid = target != self.ignore_index
        t = target[valid].astype(np.int64, copy=False)
        p = pred[valid].astype(np.int64, copy=False)
        if t.size == 0:
            return
        n = self.num_classes
        for values, what in ((t, "target"), (p, "pred")):
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= n:
                raise ValueError(
                    f"{what} holds class id {lo if lo < 0 else hi} outside 0..{n - 1} "
                    f"(ignore_index is {self.ignore_index})"
                )
        self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (e.g. from another process); return self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) "
                f"into a {self.num_classes}-class one (ignore {self.ignore_index})"
            )
        self.matrix += other.matrix
        return self

    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def per_class_iou(self) -> np.ndarray:
        """IoU per class; NaN for classes absent from both ground truth and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes with a non-empty union (NaN if nothing was counted)."""
        iou = self.per_class_iou()
        return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / counted pixels (NaN if nothing was counted)."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def per_class_accuracy(self) -> np.ndarray:
        """Recall per class (TP / ground-truth pixels); NaN for classes absent from the truth."""
        gt = self.matrix.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gt > 0, np.diag(self.matrix) / np.maximum(gt, 1), np.nan)

    def summary(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict:
        """JSON-ready dict: ``miou``, ``pixel_acc``, ``per_class_iou`` (NaN -> None)."""
        names = list(class_names) if class_names is not None else [
            str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"got {len(names)} class names for {self.num_classes} classes")

        def clean(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            "miou": clean(self.miou()),
            "pixel_acc": clean(self.pixel_accuracy()),
            "per_class_iou": {n: clean(v) for n, v in zip(names, self.per_class_iou())},
        }


class BoundaryScore(NamedTuple):
    """Boundary precision, recall and F1 of one image (fractions in [0, 1])."""

    precision: float
    recall: float
    f1: float


def label_boundaries(label: np.ndarray, ignore_index: int | None = 255) -> np.ndarray:
    """Boundary pixels of a label map: both pixels of every 4-neighbour pair with different labels.

    A pair where either pixel is ``ignore_index`` is not a boundary (ignore creates none).

    Args:
        label: HxW integer label map.
        ignore_index: Value that never makes a boundary (``None``: every value is a class).

    Returns:
        HxW bool mask.
    """
    label = _as_label_array(label, "label")
    if label.ndim != 2:
        raise ValueError(f"label map must be HxW, got shape {label.shape}")
    valid = np.ones(label.shape, bool) if ignore_index is None else label != ignore_index
    edges = np.zeros(label.shape, dtype=bool)
    horizontal = (label[:, 1:] != label[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    vertical = (label[1:, :] != label[:-1, :]) & valid[1:, :] & valid[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    return edges


def interior_mask(label: np.ndarray, band_px: float = 5, ignore_index: int = 255) -> np.ndarray:
    """Valid pixels farther than ``band_px`` from every ground-truth boundary (region interiors).

    Scoring these alone separates how well a model labels the inside of regions from how well
    it places their borders (SlimSeg's boundary loss claims to help mostly near borders).
    """
    edges = label_boundaries(label, ignore_index)
    valid = _as_label_array(label, "label") != ignore_index
    if not edges.any():
        return valid
    return valid & (_distance_to(edges) > band_px)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest True pixel of ``mask``."""
    # distanceTransform measures the distance to the nearest zero pixel.
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def boundary_f1(
    pred: np.ndarray,
    target: np.ndarray,
    tolerance_px: float = 2,
    ignore_index: int = 255,
) -> BoundaryScore:
    """Boundary precision/recall/F1 of one predicted label map against the ground truth.

    Boundaries are :func:`label_boundaries` of each map. A predicted boundary pixel is correct
    when a ground-truth boundary pixel lies within ``tolerance_px`` (Euclidean), and vice versa
    for recall. Pixels whose ground truth is ignored are left out on both sides, and ignore
    pixels create no ground-truth boundary.

    Edge cases: no boundary in either map gives 1, 1, 1; boundaries in only one map give F1 0
    (precision 1 / recall 0 when the prediction has none, the reverse otherwise). An image with
    no valid ground-truth pixel gives NaN (nothing to score).

    Args:
        pred: HxW predicted class ids.
        target: HxW ground-truth class ids.
        tolerance_px: Matching distance in pixels (>= 0).
        ignore_index: Ground-truth value of pixels to leave out.

    Returns:
        :class:`BoundaryScore` with fractions in [0, 1].
    """
    pred = _as_label_array(pred, "pred")
    target = _as_label_array(target, "target")
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be HxW maps of one shape, got {pred.shape} and {target.shape}"
        )
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    valid = target != ignore_index
    if not valid.any():
        nan = float("nan")
        return BoundaryScore(nan, nan, nan)
    # Predictions where the truth is ignored must not make boundaries either.
    pred_masked = np.where(valid, pred, ignore_index)
    gt_edges = label_boundaries(target, ignore_index)
    pred_edges = label_boundaries(pred_masked, ignore_index)
    n_gt, n_pred = int(gt_edges.sum()), int(pred_edges.sum())
    if n_gt == 0 and n_pred == 0:
        return BoundaryScore(1.0, 1.0, 1.0)
    if n_pred == 0:
        return BoundaryScore(1.0, 0.0, 0.0)
    if n_gt == 0:
        return BoundaryScore(0.0, 1.0, 0.0)
    tol = float(tolerance_px) + 1e-6  # float32 distances of exact integers, e.g. 2.0000002
    precision = float((_distance_to(gt_edges)[pred_edges] <= tol).mean())
    recall = float((_distance_to(pred_edges)[gt_edges] <= tol).mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return BoundaryScore(precision, recall, f1)


class BoundaryF1Meter:
    """Averages :func:`boundary_f1` over images (images with no valid pixel are skipped).

    Args:
        tolerance_px: Matching distance in pixels.
        ignore_index: Ground-truth value of pixels to leave out.
    """

    def __init__(self, tolerance_px: float = 2, ignore_index: int = 255) -> None:
        if tolerance_px < 0:
            raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
        self.tolerance_px = float(tolerance_px)
        self.ignore_index = int(ignore_index)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.count = 0
        self._sums = np.zeros(3, dtype=np.float64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Score one HxW image or a NxHxW batch."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape or pred.ndim not in (2, 3):
            raise ValueError(
                f"pred and target must be HxW or NxHxW of one shape, got {pred.shape} and "
                f"{target.shape}"
            )
        pairs = zip(pred, target) if pred.ndim == 3 else [(pred, target)]
        for p, t in pairs:
            score = boundary_f1(p, t, self.tolerance_px, self.ignore_index)
            if not np.isnan(score.f1):
                self._sums += score
                self.count += 1

    def merge(self, other: BoundaryF1Meter) -> BoundaryF1Meter:
        """Add another meter's images into this one; return self."""
        if (other.tolerance_px, other.ignore_index) != (self.tolerance_px, self.ignore_index):
            raise ValueError("cannot merge boundary meters with different tolerance or ignore")
        self._sums += other._sums
        self.count += other.count
        return self

    def value(self) -> BoundaryScore:
        """Mean precision, recall and F1 over scored images (NaN if none)."""
        if self.count == 0:
            nan = float("nan")
            return BoundaryScore(nan, nan, nan)
        mean = self._sums / self.count
        return BoundaryScore(float(mean[0]), float(mean[1]), float(mean[2]))

    @property
    def f1(self) -> float:
        """Mean per-image boundary F1."""
        return self.value().f1


def label_agreement(labels: np.ndarray, reference: np.ndarray, num_classes: int) -> float:
    """mIoU of ``labels`` against ``reference`` (another prediction, not ground truth): how far
    a cheap operating point agrees with the most accurate one (NaN for empty maps)."""
    if labels.shape != reference.shape:
        raise ValueError(f"label maps of {labels.shape} and {reference.shape} differ in size")
    matrix = ConfusionMatrix(num_classes, ignore_index=255)
    matrix.update(labels, reference)
    return matrix.miou()
