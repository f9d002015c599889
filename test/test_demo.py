"""``slimseg demo``: shipped sample frames, the random-model fallback, a short real run."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from slimseg_ros.cli import demo
from slimseg_ros.cli.main import main
from slimseg_ros.data import build_dataset
from slimseg_ros.model.checkpoint import read_metadata

DOMAIN = 224 + os.getpid() % 9


def test_sample_frames_ship_with_the_package():
    root = demo.sample_root()
    dataset = build_dataset("camvid", root, "val")
    assert len(dataset) >= 20
    names = [dataset.name(i) for i in range(len(dataset))]
    assert names == sorted(names) and names[0] == "0016E5_07959"
    image, labels = dataset.load(0)
    assert image.shape == (360, 480, 3) and labels.shape == (360, 480)
    assert set(labels.ravel().tolist()) <= set(range(11)) | {255}
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024
    readme = (root / "README.md").read_text()
    assert "Brostow" in readme and "SegNet" in readme


def test_missing_default_model_falls_back_to_a_random_one(tmp_path, monkeypatch):
    monkeypatch.setattr("slimseg_ros.runtime.loader.default_model_path", lambda: None)
    path, is_random = demo._model(argparse.Namespace(checkpoint=None), tmp_path)
    assert is_random and path.endswith("random_model.safetensors")
    assert read_metadata(path).widths == (0.25, 0.5, 0.75, 1.0)
    with pytest.raises(demo.UserError, match="does not exist"):
        demo._model(argparse.Namespace(checkpoint=str(tmp_path / "nope.safetensors")), tmp_path)


@pytest.mark.dds
@pytest.mark.slow
def test_demo_runs_and_writes_the_report(tmp_path, monkeypatch, capsys, make_checkpoint):
    pytest.importorskip("rclpy")
    small = make_checkpoint(input_size=(48, 64), seed=2)  # a small input keeps the test quick
    # the run as on a fresh clone without the trained model: the random-model path, labelled
    monkeypatch.setattr(demo, "_model", lambda args, out: (str(small), True))
    # what the demo would set itself, undone after the test (other tests share this process)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--duration", "2", "--domain-id", str(DOMAIN)])
    printed = capsys.readouterr().out
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["demo"]["random_model"] is True and "RANDOM MODEL" in doc["warning"]
    assert doc["frames_sent"] == 48 and doc["loops"] == 2  # 24 frames at 15 Hz fill 2 s twice
    assert doc["frames_processed"] >= 1
    assert doc["node"]["params"]["adaptive"] is True
    assert doc["node"]["params"]["target_fps"] == 5.0
    (change,) = doc["param_changes"]
    assert change["name"] == "target_fps" and change["value"] == 15.0
    assert change["successful"] is True
    assert doc["battery_timeline"][0][1] == 1.0 and doc["battery_timeline"][-1][1] == 0.1
    report = (out / "report.md").read_text()
    assert "RANDOM MODEL" in report and "target_fps" in report
    for name in ("timeline.png", "miou_latency.png", "confusion.png", "node.log"):
        assert (out / name).stat().st_size > 0
    assert (out / "bag" / "metadata.yaml").is_file()
    assert "RANDOM MODEL" in printed and "width timeline" in printed and "| **all** |" in printed
