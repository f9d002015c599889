"""Pseudo-label precision/recall and teacher agreement, on hand-made frames."""

from __future__ import annotations

import numpy as np
import pytest

from slimseg_ros.eval.pseudo_labels import PseudoLabelQuality, TeacherAgreement


def _probs(labels: np.ndarray, confidence: np.ndarray, classes: int = 3) -> np.ndarray:
    """One-hot-ish probabilities: ``confidence`` on the label, the rest spread evenly."""
    p = np.repeat(((1.0 - confidence) / (classes - 1))[None], classes, 0)
    for c in range(classes):
        p[c][labels == c] = confidence[labels == c]
    return p.astype(np.float32)


def test_precision_and_recall_per_class_at_each_threshold() -> None:
    target = np.array([[0, 0, 1, 1, 2, 255]])
    predicted = np.array([[0, 1, 1, 1, 1, 0]])
    confidence = np.array([[0.9, 0.5, 0.9, 0.5, 0.9, 0.9]])
    q = PseudoLabelQuality(3, thresholds=(0.0, 0.8))
    q.update(_probs(predicted, confidence), target)
    all_kept, confident = q.summary(["a", "b", "c"]).values()
    assert all_kept["coverage"] == 1.0  # the ignored pixel counts nowhere
    assert all_kept["accuracy"] == pytest.approx(3 / 5)
    assert all_kept["classes"]["b"] == {"precision": pytest.approx(2 / 4), "recall": 1.0}
    assert all_kept["classes"]["a"] == {"precision": 1.0, "recall": 0.5}
    assert np.isnan(all_kept["classes"]["c"]["precision"])  # never predicted
    assert all_kept["classes"]["c"]["recall"] == 0.0
    # at 0.8 the two unsure pixels are dropped: precision of b rises, its recall falls
    assert confident["coverage"] == pytest.approx(3 / 5)
    assert confident["classes"]["b"] == {"precision": 0.5, "recall": 0.5}
    assert confident["classes"]["a"]["recall"] == 0.5


def test_quality_refuses_mismatched_frames() -> None:
    q = PseudoLabelQuality(3)
    with pytest.raises(ValueError, match="classes=3"):
        q.update(np.zeros((4, 2, 2), np.float32), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="differ in size"):
        q.update(np.zeros((3, 2, 2), np.float32), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="thresholds"):
        PseudoLabelQuality(3, thresholds=(1.0,))


def test_agreement_separates_accuracy_where_teachers_agree_and_disagree() -> None:
    target = np.array([[0, 1, 2, 2, 255]])
    sure = np.full(target.shape, 0.9)
    a = _probs(np.array([[0, 1, 2, 0, 1]]), sure)
    b = _probs(np.array([[0, 2, 2, 1, 1]]), sure)
    s = TeacherAgreement()
    s.update(a, b, target)
    summary = s.summary()
    assert summary["agreement"] == pytest.approx(2 / 4)
    assert summary["accuracy_where_agree"] == 1.0
    assert summary["accuracy_a_where_disagree"] == pytest.approx(1 / 2)
    assert summary["accuracy_b_where_disagree"] == 0.0
