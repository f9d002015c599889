"""The studies' scoring sets of a CamVid root, a checkpoint scored on them, and shifted bags."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.data.camera_shifts import shift_a, shift_b
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.eval.study_sets import SET_NAMES, score_checkpoint, shifted_bag, study_sets

H, W = 48, 64
FRAMES = {"train": ["0001TP_000030", "0006R0_000060", "0006R0_000090"],
          "val": ["0016E5_000030", "0016E5_000060", "0016E5_000090"]}


@pytest.fixture(scope="module")
def camvid(tmp_path_factory) -> Path:
    """A CamVid root in the SegNet layout: two drives in train (one of them 0006R0), val."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.default_rng(0)
    for split, names in FRAMES.items():
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for name in names:
            cv2.imwrite(str(root / split / f"{name}.png"),
                        rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"{name}.png"),
                        rng.integers(0, 11, (H, W), dtype=np.uint8))
    return root


def test_the_four_sets_hold_the_frames_they_name(camvid: Path) -> None:
    sets = study_sets(camvid)
    assert tuple(sets) == SET_NAMES
    val = list(sets["val"]())
    assert len(val) == 3 and len(list(sets["heldout"]())) == 2  # only drive 0006R0
    shifted_a, shifted_b = list(sets["shift_a"]()), list(sets["shift_b"]())
    assert len(shifted_a) == len(shifted_b) == 2  # every second val frame
    for (rgb, labels), (a, a_labels), (b, _) in zip(val[::2], shifted_a, shifted_b):
        assert np.array_equal(a, shift_a(rgb)) and np.array_equal(b, shift_b(rgb, 0))
        assert np.array_equal(a_labels, labels)  # the labels stay as they were
    again = list(sets["shift_b"]())  # a set is the same each time it is read
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(shifted_b, again))


def test_a_checkpoint_is_scored_per_set_and_width(camvid: Path, make_checkpoint) -> None:
    sets = study_sets(camvid)
    scores = score_checkpoint(make_checkpoint(input_size=(H, W)),
                              {"val": sets["val"], "shift_a": sets["shift_a"]})
    assert set(scores) == {"val", "shift_a"}
    assert set(scores["val"]) == {"0.25", "0.5", "0.75", "1.0"}
    for per_width in scores.values():
        for result in per_width.values():
            assert set(result) == {"miou", "boundary_f1"}
            assert 0.0 <= result["miou"] <= 1.0


def test_a_shifted_bag_holds_the_split_through_the_camera(camvid: Path, tmp_path: Path) -> None:
    out = shifted_bag(camvid, "val", tmp_path / "shifted_val", labels=True, camera=shift_b)
    bag = RosbagFrames(out)
    assert len(bag) == 3
    original = study_sets(camvid)["val"]
    for i, (rgb, labels) in enumerate(original()):
        got_rgb, got_labels = bag.load(i)
        assert np.array_equal(got_rgb, shift_b(rgb, i))  # PNG: lossless; a noise draw per frame
        assert np.array_equal(got_labels, labels)
    unlabelled = shifted_bag(camvid, "train", tmp_path / "shifted_train", labels=False)
    assert len(RosbagFrames(unlabelled, require_labels=False)) == 3
    with pytest.raises(ValueError, match="no label topic"):
        RosbagFrames(unlabelled)
