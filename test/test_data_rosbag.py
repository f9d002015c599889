"""The rosbag frames dataset: real bags written with rosbags, read back by index."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from slimseg_ros.cli.main import main
from slimseg_ros.data import build_dataset
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.eval import bagio

H, W = 24, 32


def _frames(n: int, seed: int = 0, unlabelled: tuple[int, ...] = ()) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        labels = rng.integers(0, 11, (H, W), dtype=np.uint8)
        labels[0, :3] = 255
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        out.append((rgb, None if i in unlabelled else labels))
    return out


@pytest.fixture(params=["mcap", "sqlite3"])
def bag(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list]:
    frames = _frames(10)
    bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10, storage=request.param)
    return tmp_path / "bag", frames


def test_frames_come_back_by_index_in_time_order(bag: tuple[Path, list]) -> None:
    path, frames = bag
    data = RosbagFrames(path)
    assert len(data) == 10 and data.num_classes == 11 and data.ignore_index == 255
    for i in (0, 7, 3, 9, -1):  # any order: random access, not a stream
        rgb, labels = data[i]
        np.testing.assert_array_equal(rgb, frames[i][0])
        np.testing.assert_array_equal(labels, frames[i][1])
    assert data.stamp_ns(1) - data.stamp_ns(0) == 100_000_000
    assert data.name(2) == str(bagio.DEFAULT_START_NS + 200_000_000)


def test_splits_are_temporal_and_disjoint(bag: tuple[Path, list]) -> None:
    path, _ = bag
    every = [RosbagFrames(path).stamp_ns(i) for i in range(10)]
    train = RosbagFrames(path, "train", val_fraction=0.3)
    val = RosbagFrames(path, "val", val_fraction=0.3)
    assert [train.stamp_ns(i) for i in range(len(train))] == every[:7]
    assert [val.stamp_ns(i) for i in range(len(val))] == every[7:]


def test_unlabelled_frames_are_left_out_or_kept_with_ignore_labels(tmp_path: Path) -> None:
    frames = _frames(6, unlabelled=(1, 4))
    bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10)
    labelled = RosbagFrames(tmp_path / "bag")
    assert len(labelled) == 4
    np.testing.assert_array_equal(labelled[1][0], frames[2][0])
    everything = RosbagFrames(tmp_path / "bag", require_labels=False)
    assert len(everything) == 6
    rgb, labels = everything[4]
    np.testing.assert_array_equal(rgb, frames[4][0])
    assert labels.shape == (H, W) and (labels == 255).all()


def test_a_bag_without_labels_or_frames_is_a_one_line_error(tmp_path: Path) -> None:
    frames = [(rgb, None) for rgb, _ in _frames(3)]
    bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10)
    with pytest.raises(ValueError, match="has no label topic .* require_labels=False") as err:
        RosbagFrames(tmp_path / "bag")
    assert "\n" not in str(err.value)
    assert len(RosbagFrames(tmp_path / "bag", require_labels=False)) == 3
    with pytest.raises(ValueError, match="split must be one of all, train, val"):
        RosbagFrames(tmp_path / "bag", "test", require_labels=False)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        RosbagFrames(tmp_path / "bag", "val", val_fraction=1.0, require_labels=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RosbagFrames(tmp_path / "nothing")


def test_dataloader_workers_each_read_the_bag(bag: tuple[Path, list]) -> None:
    path, frames = bag
    data = build_dataset("rosbag", path, "all")
    data[0]  # the parent's reader is open: the workers must not share it
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
    got = [(rgb, labels) for rgb, labels in loader]
    assert len(got) == 10
    for (rgb, labels), (want_rgb, want_labels) in zip(got, frames):
        np.testing.assert_array_equal(np.asarray(rgb), want_rgb)
        np.testing.assert_array_equal(np.asarray(labels), want_labels)
    clone = pickle.loads(pickle.dumps(data))  # what a spawned worker receives
    np.testing.assert_array_equal(clone[5][0], frames[5][0])


def test_slimseg_eval_on_a_bag_equals_bag_eval_offline(tmp_path: Path, make_checkpoint) -> None:
    checkpoint = make_checkpoint(input_size=(32, 48))  # the engine resizes the 24x32 frames
    bagio.write_frames_bag(tmp_path / "bag", _frames(6), rate_hz=10)
    eval_json, bag_json = tmp_path / "eval.json", tmp_path / "bag.json"
    assert main(["eval", "--dataset", "rosbag", "--data-root", str(tmp_path / "bag"),
                 "--split", "all", "--checkpoint", str(checkpoint), "--json",
                 str(eval_json)]) == 0
    assert main(["bag", "eval", "--bag", str(tmp_path / "bag"), "--mode", "offline",
                 "--checkpoint", str(checkpoint), "--json", str(bag_json)]) == 0
    ours, theirs = json.loads(eval_json.read_text()), json.loads(bag_json.read_text())
    assert ours["images"] == 6
    for width, row in ours["widths"].items():
        assert row["miou"] == pytest.approx(theirs["widths"][width]["miou"], abs=1e-9)
        assert row["boundary_f1"] == pytest.approx(theirs["widths"][width]["boundary_f1"],
                                                   abs=1e-9)


@pytest.mark.slow
def test_training_reads_its_train_and_val_frames_from_a_bag(tmp_path: Path) -> None:
    from slimseg_ros.model import load_checkpoint
    from slimseg_ros.train.config import load_train_config
    from slimseg_ros.train.loop import train

    rng = np.random.default_rng(3)
    frames = [(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
               rng.integers(0, 11, (64, 64), dtype=np.uint8)) for _ in range(10)]
    bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10)
    cfg = load_train_config(None, [
        "model.num_classes=11", "model.head_channels=16", "data.dataset=rosbag",
        f"data.root={tmp_path / 'bag'}", "data.crop_size=[48,48]", "data.scale_range=[0.9,1.1]",
        "data.batch_size=2", "data.workers=0", "data.val_size=[64,64]", "steps=3",
        "val_every=3", "optim.warmup_steps=1", "threads=1", f"out={tmp_path / 'run'}"])
    result = train(cfg, progress=False)
    assert result.steps == 3
    _, meta = load_checkpoint(result.last_checkpoint)
    assert set(meta.training["val"]) == {"0.25", "0.5", "0.75", "1.0"}  # scored on "val"
