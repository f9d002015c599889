"""How good are a teacher's pseudo labels? Scored against labels the training run withheld.

Semi-supervised training (MGD, ``slimseg adapt``) learns from a teacher's argmax where its
probability reaches a threshold. Two numbers per class decide whether that can help: the
*precision* of the kept labels (of the pixels labelled ``c``, the share that are ``c``) and their
*recall* (of the pixels that are ``c``, the share that got the label ``c``: a class the threshold
drops is never taught). :class:`PseudoLabelQuality` accumulates both at several thresholds over
frames; :class:`TeacherAgreement` measures how often two teachers agree, and how right they are
where they do and where they do not (MGD averages complementary teachers: the average is only
worth more than either when their mistakes differ).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .metrics import ConfusionMatrix

__all__ = ["PseudoLabelQuality", "TeacherAgreement"]


def _check(probs: np.ndarray, target: np.ndarray, num_classes: int) -> None:
    if probs.ndim != 3 or probs.shape[0] != num_classes:
        raise ValueError(f"probabilities must be (classes={num_classes}, H, W), "
                         f"got {list(probs.shape)}")
    if probs.shape[1:] != target.shape:
        raise ValueError(f"probabilities {list(probs.shape[1:])} and labels "
                         f"{list(target.shape)} differ in size")


class PseudoLabelQuality:
    """Per-class precision and recall of thresholded argmax pseudo labels."""

    def __init__(self, num_classes: int, thresholds: Sequence[float] = (0.0,),
                 ignore_index: int = 255) -> None:
        if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be in [0, 1), got {list(thresholds)}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.thresholds = tuple(float(t) for t in thresholds)
        # kept pixels only: predicted class vs truth (rows truth, as ConfusionMatrix)
        self.kept = {t: ConfusionMatrix(num_classes, ignore_index) for t in self.thresholds}
        self.true_count = np.zeros(num_classes, np.int64)  # every valid pixel, kept or not

    def update(self, probs: np.ndarray, target: np.ndarray) -> None:
        """Add one frame: ``probs`` (C, H, W) class probabilities, ``target`` (H, W) labels."""
        _check(probs, target, self.num_classes)
        valid = target != self.ignore_index
        self.true_count += np.bincount(target[valid].astype(np.int64),
                                       minlength=self.num_classes)[:self.num_classes]
        confidence, predicted = probs.max(0), probs.argmax(0)
        for t in self.thresholds:
            truth = np.where(confidence >= t, target, self.ignore_index)
            self.kept[t].update(predicted, truth)

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, dict]:
        """Per threshold: coverage, accuracy and mIoU of the kept labels, per-class P/R."""
        names = list(class_names) if class_names else [str(c) for c in range(self.num_classes)]
        valid = int(self.true_count.sum())
        out: dict[str, dict] = {}
        for t, cm in self.kept.items():
            m = cm.matrix.astype(np.float64)
            tp, predicted = np.diag(m), m.sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.where(predicted > 0, tp / predicted, np.nan)
                recall = np.where(self.true_count > 0, tp / self.true_count, np.nan)
            out[f"{t:g}"] = {
                "coverage": cm.total / valid if valid else float("nan"),
                "accuracy": cm.pixel_accuracy(),
                "miou_kept": cm.miou(),
                "classes": {n: {"precision": float(p), "recall": float(r)}
                            for n, p, r in zip(names, precision, recall)},
            }
        return out


class TeacherAgreement:
    """How often two teachers' argmaxes agree, and the accuracy where they agree or not."""

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index
        self.pixels = self.agree = self.right_agree = 0
        self.right_a_disagree = self.right_b_disagree = 0

    def update(self, probs_a: np.ndarray, probs_b: np.ndarray, target: np.ndarray) -> None:
        if probs_a.shape != probs_b.shape:
            raise ValueError(f"the teachers' probabilities differ in shape: "
                             f"{list(probs_a.shape)} and {list(probs_b.shape)}")
        _check(probs_a, target, probs_a.shape[0])
        valid = target != self.ignore_index
        a, b, y = probs_a.argmax(0)[valid], probs_b.argmax(0)[valid], target[valid]
        same = a == b
        self.pixels += int(valid.sum())
        self.agree += int(same.sum())
        self.right_agree += int((same & (a == y)).sum())
        self.right_a_disagree += int((~same & (a == y)).sum())
        self.right_b_disagree += int((~same & (b == y)).sum())

    def summary(self) -> dict[str, float]:
        disagree = self.pixels - self.agree
        nan = float("nan")
        return {
            "agreement": self.agree / self.pixels if self.pixels else nan,
            "accuracy_where_agree": self.right_agree / self.agree if self.agree else nan,
            "accuracy_a_where_disagree": self.right_a_disagree / disagree if disagree else nan,
            "accuracy_b_where_disagree": self.right_b_disagree / disagree if disagree else nan,
        }
