"""Offline bag evaluation: oracle round trip, equality with `slimseg eval`'s scoring, the CLI."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from slimseg_ros.cli.main import main
from slimseg_ros.data import build_dataset
from slimseg_ros.data import bagread
from slimseg_ros.eval import bagio
from slimseg_ros.eval.offline import evaluate_bag_offline
from slimseg_ros.eval.scoring import score_engine
from slimseg_ros.runtime import load_engine

SIZE = (48, 64)
NAMES = tuple(f"c{i}" for i in range(11))


class OracleEngine:
    """Test double for the scoring path: answers each frame with its own ground truth."""

    def __init__(self, pairs, widths=(0.25, 0.5, 1.0)) -> None:
        self._truth = {self._key(rgb): labels for rgb, labels in pairs}
        self.widths = widths
        self.calls: list[float] = []
        self.meta = SimpleNamespace(class_names=NAMES, ignore_index=255)

    @staticmethod
    def _key(rgb: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).digest()

    def infer(self, rgb: np.ndarray, width: float) -> np.ndarray:
        self.calls.append(width)
        return self._truth[self._key(rgb)].copy()


@pytest.fixture(scope="module")
def dataset():
    return build_dataset("synthetic", None, "val", n=4, size=SIZE, num_classes=11)


@pytest.fixture(scope="module")
def random_checkpoint(make_checkpoint):
    return make_checkpoint(input_size=SIZE)


@pytest.mark.parametrize("storage,compressed", [("mcap", None), ("sqlite3", None),
                                                ("mcap", "png")])
def test_oracle_scores_one_at_every_width(tmp_path, dataset, storage, compressed):
    pairs = [dataset.load(i) for i in range(len(dataset))]
    bag = tmp_path / "bag"
    bagio.write_dataset_bag(dataset, bag, storage=storage, compressed=compressed)
    oracle = OracleEngine(pairs)
    result = evaluate_bag_offline(bag, oracle)
    assert sorted(oracle.calls) == sorted(list(oracle.widths) * len(pairs))
    doc = result.doc
    assert doc["images"] == doc["frames_sent"] == doc["frames_processed"] == len(pairs)
    assert doc["processed_fraction"] == 1.0
    assert set(doc["widths"]) == {"0.25", "0.5", "1.0"}
    for r in doc["widths"].values():
        assert r["miou"] == 1.0 and r["pixel_acc"] == 1.0 and r["boundary_f1"] == 1.0
        assert r["frames"] == len(pairs)


def test_a_wrong_model_scores_below_one(tmp_path, dataset):
    pairs = [dataset.load(i) for i in range(len(dataset))]
    shifted = [(rgb, np.where(lab == 255, 255, (lab + 1) % 11).astype(np.uint8))
               for rgb, lab in pairs]
    bagio.write_dataset_bag(dataset, tmp_path / "bag")
    result = evaluate_bag_offline(tmp_path / "bag", OracleEngine(shifted, widths=(1.0,)))
    assert result.doc["widths"]["1.0"]["miou"] < 0.5


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_offline_bag_eval_equals_plain_per_frame_eval(tmp_path, dataset, random_checkpoint,
                                                      storage):
    """The issue's target: same frames via a bag or straight from the dataset, same numbers."""
    engine = load_engine(random_checkpoint, backend="torch", device="cpu", warmup_repeats=1)
    bagio.write_dataset_bag(dataset, tmp_path / "bag", storage=storage)
    bag_doc = evaluate_bag_offline(tmp_path / "bag", engine).doc
    plain, count = score_engine(engine, (dataset.load(i) for i in range(len(dataset))),
                                engine.widths, engine.meta.class_names)
    assert count == bag_doc["images"] == len(dataset)
    assert set(plain) == set(bag_doc["widths"]) == {"0.25", "0.5", "0.75", "1.0"}
    for key, expected in plain.items():
        got = bag_doc["widths"][key]
        for metric in ("miou", "pixel_acc", "boundary_f1"):
            assert round(got[metric], 4) == round(expected[metric], 4), (key, metric)
        assert got["per_class_iou"] == pytest.approx(expected["per_class_iou"], abs=1e-9,
                                                     nan_ok=True)


def test_offline_needs_labels(tmp_path, dataset):
    frames = [(dataset.load(0)[0], None)]
    bagio.write_frames_bag(tmp_path / "bag", frames)
    with pytest.raises(ValueError, match="no label topic"):
        evaluate_bag_offline(tmp_path / "bag", OracleEngine([]))


@pytest.mark.slow
def test_cli_make_then_eval_offline_with_report(tmp_path, random_checkpoint, capsys):
    bag = tmp_path / "bag"
    assert main(["bag", "make", "--dataset", "synthetic", "--split", "val", "--limit", "3",
                 "--out", str(bag), "--rate", "5", "--battery", "1.0:0.5",
                 "--storage", "sqlite3"]) == 0
    info = bagread.inspect_bag(bag)
    assert info.storage == "sqlite3" and info.count("/camera/image_raw") == 3
    assert info.count("/battery_state") >= 2
    out_json = tmp_path / "m.json"
    report = tmp_path / "report"
    assert main(["bag", "eval", "--bag", str(bag), "--checkpoint", str(random_checkpoint),
                 "--widths", "0.25,1.0", "--json", str(out_json), "--report", str(report)]) == 0
    doc = json.loads(out_json.read_text())
    assert doc["mode"] == "offline" and doc["images"] == 3
    assert set(doc["widths"]) == {"0.25", "1.0"}
    assert all(0.0 <= r["miou"] <= 1.0 for r in doc["widths"].values())
    assert json.loads((report / "metrics.json").read_text())["widths"] == doc["widths"]
    for name in ("report.md", "miou_latency.png", "confusion.png"):
        assert (report / name).stat().st_size > 0
    assert "| 0.25 |" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["bag", "eval", "--bag", "/nonexistent/bag", "--checkpoint", "{ckpt}"], "does not exist"),
    (["bag", "make", "--dataset", "synthetic", "--out", "{tmp}/b", "--battery", "100:10"],
     "fractions"),
    (["bag", "make", "--dataset", "synthetic", "--out", "{tmp}/b", "--rate", "0"], "--rate"),
    (["bag", "eval", "--bag", "{tmp}", "--checkpoint", "{ckpt}"], "not a rosbag2"),
    (["bag", "eval", "--bag", "{tmp}", "--mode", "replay", "--set", "soon:width=1",
      "--checkpoint", "{ckpt}"], "T:NAME=VALUE"),
])
def test_cli_errors_are_one_line(tmp_path, random_checkpoint, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, ckpt=random_checkpoint) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_camvid_bag_equals_dataset_eval(tmp_path, camvid_root, random_checkpoint):
    """Real CamVid frames (360x480) through a bag: identical to the plain evaluation."""
    dataset = build_dataset("camvid", camvid_root, "val")
    bagio.write_dataset_bag(dataset, tmp_path / "bag", indices=[0, 1])
    engine = load_engine(random_checkpoint, backend="torch", device="cpu", warmup_repeats=1)
    bag_doc = evaluate_bag_offline(tmp_path / "bag", engine, widths=(0.25, 1.0)).doc
    plain, _ = score_engine(engine, (dataset.load(i) for i in (0, 1)), (0.25, 1.0),
                            dataset.class_spec.names)
    for key in ("0.25", "1.0"):
        assert round(bag_doc["widths"][key]["miou"], 4) == round(plain[key]["miou"], 4)


def test_cli_replay_wiring(tmp_path, random_checkpoint, monkeypatch, capsys):
    """`bag eval --mode replay` hands the right ReplayConfig to the replay (no node here)."""
    pytest.importorskip("rclpy", reason="the replay runs on the ROS 2 client library")
    from slimseg_ros.eval.replay_score import ReplayResult
    from slimseg_ros.eval.width_scores import WidthScores
    from slimseg_ros.ros.client import replay

    seen = {}

    def fake_run_replay(bag, config, **kw):
        seen.update(bag=bag, config=config, **kw)
        doc = {"mode": "replay", "frames_sent": 0, "frames_processed": 0, "widths": {},
               "processed_fraction": None, "frames_dropped": 0, "frames_scored": 0,
               "node": {"log": "x"}}
        return ReplayResult(doc, WidthScores(NAMES))

    monkeypatch.setattr(replay, "run_replay", fake_run_replay)
    code = main(["bag", "eval", "--bag", "b", "--mode", "replay", "--checkpoint",
                 str(random_checkpoint), "--speed", "2", "--loops", "3", "--width", "0.5",
                 "--battery", "0.9:0.2", "--set", "5:target_fps=15", "--set",
                 "7.5:battery_thresholds=[0.6, 0.2]", "--param", "min_dwell_s=1",
                 "--image-topic", "/cam", "--domain-id", "42", "--backend", "onnxruntime",
                 "--report", str(tmp_path / "r")])
    assert code == 1  # the fake node answered nothing: an error for the user
    assert "answered no frame" in capsys.readouterr().err
    config = seen["config"]
    assert seen["bag"] == "b" and seen["image_topic"] == "/cam"
    assert (config.speed, config.loops, config.width, config.adaptive) == (2.0, 3, 0.5, False)
    assert config.battery == (0.9, 0.2) and config.domain_id == 42 and config.spawn_node
    assert [(e.t_s, e.name, e.value) for e in config.param_events] == [
        (5.0, "target_fps", 15), (7.5, "battery_thresholds", [0.6, 0.2])]
    assert config.node_params == {"min_dwell_s": 1, "backend": "onnxruntime", "device": "auto",
                                  "precision": "fp32"}
    assert config.node_log == tmp_path / "r" / "node.log"
    assert config.model_path == str(random_checkpoint.resolve())
