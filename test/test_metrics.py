"""Metrics against hand-computed values: confusion matrix, IoU, accuracy, boundary F1."""

from __future__ import annotations

import ast
import math
import sys

import numpy as np
import pytest

from slimseg_ros.eval.metrics import (
    BoundaryF1Meter,
    ConfusionMatrix,
    boundary_f1,
    label_boundaries,
)

# 3 classes; target has one ignore pixel (255) whose prediction must not count.
TARGET = np.array([[0, 0, 1, 1],
                   [0, 2, 1, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 2, 0]], dtype=np.uint8)
# rows = truth, cols = prediction, counted by hand from the 7 valid pixels
EXPECTED = np.array([[2, 1, 0],
                     [0, 2, 1],
                     [0, 0, 1]])


def test_confusion_matrix_by_hand() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.matrix.tolist() == EXPECTED.tolist()
    assert cm.total == 7
    # IoU: c0 = 2/(3+2-2) = 2/3, c1 = 2/(3+3-2) = 1/2, c2 = 1/(1+2-1) = 1/2
    assert np.allclose(cm.per_class_iou(), [2 / 3, 1 / 2, 1 / 2])
    assert math.isclose(cm.miou(), (2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert math.isclose(cm.pixel_accuracy(), 5 / 7)
    assert np.allclose(cm.per_class_accuracy(), [2 / 3, 2 / 3, 1.0])


def test_absent_class_is_nan_and_left_out_of_miou() -> None:
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)  # class 3 appears nowhere
    iou = cm.per_class_iou()
    assert math.isnan(iou[3])
    assert math.isclose(cm.miou(), (2 / 3 + 1 / 2 + 1 / 2) / 3)


def test_predicted_but_absent_class_counts_as_zero() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 2]]), np.array([[0, 0]]))
    # c0: TP 1, union 2 -> 0.5; c1 absent -> NaN; c2 predicted only -> 0
    iou = cm.per_class_iou()
    assert iou[0] == 0.5 and math.isnan(iou[1]) and iou[2] == 0.0
    assert cm.miou() == 0.25


def test_batches_and_merge_equal_one_update() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 10, 12))
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, 5, size=(3, 10, 12))
    whole = ConfusionMatrix(5)
    whole.update(pred, target)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(pred[0], target[0])
    b.update(pred[1:], target[1:])
    assert a.merge(b).matrix.tolist() == whole.matrix.tolist()
    # Independent count by loops.
    expected = np.zeros((5, 5), dtype=int)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            expected[t, p] += 1
    assert whole.matrix.tolist() == expected.tolist()


def test_empty_matrix_gives_nan_and_reset_clears() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    assert cm.total == 0 and math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    cm.update(np.zeros((1, 1), int), np.zeros((1, 1), int))
    cm.reset()
    assert cm.total == 0


def test_summary_is_json_ready() -> None:
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    summary = cm.summary(["a", "b", "c", "d"])
    assert summary["per_class_iou"]["d"] is None
    assert math.isclose(summary["per_class_iou"]["a"], 2 / 3)
    assert math.isclose(summary["pixel_acc"], 5 / 7)


@pytest.mark.parametrize(
    "pred, target, message",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), "shape"),
        (np.full((2, 2), 3), np.zeros((2, 2), int), "class id 3 outside 0..2"),
        (np.zeros((2, 2), int), np.full((2, 2), 7), "class id 7"),
        (np.zeros((2, 2), np.float32), np.zeros((2, 2), int), "integer"),
    ],
)
def test_bad_updates_are_rejected(pred: np.ndarray, target: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(pred, target)


def test_merge_rejects_other_sizes() -> None:
    with pytest.raises(ValueError, match="4-class"):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))


def test_metrics_module_does_not_import_torch() -> None:
    module = sys.modules["slimseg_ros.eval.metrics"]
    with open(module.__file__, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import)
                              else [ast.alias(node.module or "")])}
    assert imported <= {"__future__", "typing", "cv2", "numpy"}


# ---------------------------------------------------------------- boundaries


def _halves(h: int, w: int, split: int, left: int = 0, right: int = 1) -> np.ndarray:
    label = np.full((h, w), left, dtype=np.uint8)
    label[:, split:] = right
    return label


def test_label_boundaries_marks_both_sides_and_skips_ignore() -> None:
    label = np.array([[0, 0, 1],
                      [0, 255, 1]], dtype=np.uint8)
    edges = label_boundaries(label)
    assert edges.astype(int).tolist() == [[0, 1, 1],
                                          [0, 0, 0]]


def test_identical_maps_score_one() -> None:
    target = _halves(20, 30, 12)
    target[5:9, 3:7] = 2
    score = boundary_f1(target, target)
    assert score == (1.0, 1.0, 1.0)


def test_shift_within_tolerance_scores_one_beyond_scores_lower() -> None:
    target = _halves(20, 30, 12)
    # Boundary pixels sit at columns 11|12; shifted by 2 -> 13|14: every pixel within 2 px.
    assert boundary_f1(_halves(20, 30, 14), target, tolerance_px=2).f1 == 1.0
    # Shift by 3: columns 14|15 vs 11|12 -> only column 14 is within 2 px of column 12.
    far = boundary_f1(_halves(20, 30, 15), target, tolerance_px=2)
    assert far == pytest.approx((0.5, 0.5, 0.5))
    # Shift by 10: nothing matches.
    assert boundary_f1(_halves(20, 30, 22), target, tolerance_px=2).f1 == 0.0
    # Tolerance 0 demands exact positions.
    assert boundary_f1(_halves(20, 30, 13), target, tolerance_px=0).f1 == pytest.approx(0.5)


def test_ignore_pixels_neither_create_nor_count_boundaries() -> None:
    target = _halves(10, 20, 10)
    target[:, 10:] = 255  # right half ignored: no ground-truth boundary at all
    pred = _halves(10, 20, 10)  # boundary exactly where the truth is ignored
    assert boundary_f1(pred, target) == (1.0, 1.0, 1.0)
    # A spurious boundary in the valid part is penalised.
    pred[:, 4:] = 1
    assert boundary_f1(pred, target) == (0.0, 1.0, 0.0)


def test_missing_boundaries_score_zero_and_all_ignore_is_nan() -> None:
    target = _halves(8, 8, 4)
    assert boundary_f1(np.zeros((8, 8), np.uint8), target) == (1.0, 0.0, 0.0)
    assert boundary_f1(target, np.zeros((8, 8), np.uint8)) == (0.0, 1.0, 0.0)
    assert all(math.isnan(v) for v in boundary_f1(target, np.full((8, 8), 255, np.uint8)))


def test_boundary_meter_averages_images_and_skips_unscorable() -> None:
    target = _halves(20, 30, 12)
    meter = BoundaryF1Meter(tolerance_px=2)
    meter.update(target, target)  # 1.0
    meter.update(_halves(20, 30, 15), target)  # 0.5
    meter.update(target, np.full((20, 30), 255, np.uint8))  # skipped
    assert meter.count == 2 and meter.f1 == pytest.approx(0.75)
    batch = BoundaryF1Meter()
    batch.update(np.stack([target, _halves(20, 30, 15)]), np.stack([target, target]))
    other = BoundaryF1Meter()
    other.update(_halves(20, 30, 22), target)  # 0.0
    assert batch.merge(other).count == 3
    assert batch.value().f1 == pytest.approx(0.5)
    assert math.isnan(BoundaryF1Meter().f1)


def test_boundary_bad_input() -> None:
    with pytest.raises(ValueError, match="HxW"):
        boundary_f1(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="tolerance_px"):
        boundary_f1(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), tolerance_px=-1)


def test_interior_mask_keeps_pixels_away_from_borders_and_never_ignore() -> None:
    from slimseg_ros.eval.metrics import interior_mask

    label = np.zeros((5, 20), np.uint8)
    label[:, 10:] = 1  # one vertical border between columns 9 and 10
    label[0, 0] = 255
    inside = interior_mask(label, band_px=3)
    # distance to the nearest border pixel (columns 9 and 10) > 3: columns 0..5 and 14..19
    expected_cols = [c for c in range(20) if c <= 5 or c >= 14]
    assert sorted(set(np.nonzero(inside)[1].tolist())) == expected_cols
    assert not inside[0, 0]  # ignore is never interior
    flat = np.full((4, 4), 2, np.uint8)
    assert interior_mask(flat).all()  # no border: every valid pixel is interior


def test_width_scores_report_interior_miou_that_ignores_border_mistakes() -> None:
    from slimseg_ros.eval.width_scores import WidthScores

    target = np.zeros((40, 40), np.uint8)
    target[:, 20:] = 1
    pred = target.copy()
    pred[:, 18:22] = 1 - target[:, 18:22]  # wrong only on the border columns
    scores = WidthScores(["a", "b"])
    scores.add(1.0, pred, target)
    summary = scores.summary(1.0)
    assert summary["interior_miou"] == 1.0 and summary["miou"] < 1.0
    assert list(summary)[:4] == ["miou", "pixel_acc", "boundary_f1", "interior_miou"]
