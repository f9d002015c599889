"""Replay through the real node over DDS (a spawned ``slimseg_ros.ros.node`` process).

A tiny random model keeps it fast; what is checked is the plumbing: frames matched by stamp,
labels at the input size, the width attribution and the reasons of switches, parameter changes
through the service, battery messages reaching the controller, compressed input. Also the ROS
side's own rules that need no DDS: the node's command line and parameter types.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from slimseg_ros.data import bagread, build_dataset  # noqa: E402
from slimseg_ros.eval import bagio  # noqa: E402
from slimseg_ros.eval.replay_plan import ParamEvent, ReplayConfig  # noqa: E402
from slimseg_ros.ros.client import NodeProcess, write_params_file  # noqa: E402
from slimseg_ros.ros.client.replay import node_params, replay_node_command, run_replay  # noqa: E402
from slimseg_ros.runtime import load_engine  # noqa: E402

# Our own domains (the node tests draw theirs from 1..100; 215..232 stay clear of Linux's
# ephemeral ports), so runs never cross.
DOMAIN = 215 + os.getpid() % 9
NET_SIZE = (48, 64)
FRAME_SIZE = (60, 80)  # differs from the network input: labels must still come at this size


@pytest.fixture(scope="module")
def checkpoint(make_checkpoint):
    return make_checkpoint(input_size=NET_SIZE, seed=1)


@pytest.fixture(scope="module")
def dataset():
    return build_dataset("synthetic", None, "val", n=10, size=FRAME_SIZE, num_classes=11)


def _config(checkpoint, tmp_path, **kw):
    return ReplayConfig(model_path=str(checkpoint), domain_id=DOMAIN, settle_s=5.0,
                        node_params={"backend": "torch", "device": "cpu"},
                        node_log=tmp_path / "node.log", **kw)


@pytest.mark.dds
def test_adaptive_replay_with_battery_and_parameter_change(tmp_path, checkpoint, dataset):
    # as a driver might record it: bgr8 on topics of its own
    bag = tmp_path / "bag"
    bagio.write_dataset_bag(dataset, bag, rate_hz=10, encoding="bgr8",
                            image_topic="/front/image", label_topic="/front/gt")
    config = _config(checkpoint, tmp_path, loops=2, target_fps=10.0, battery=(1.0, 0.05),
                     param_events=(ParamEvent(0.5, "target_fps", 12),
                                   ParamEvent(0.6, "width", 0.3)))
    result = run_replay(bag, config, image_topic="/front/image", label_topic="/front/gt")
    doc = result.doc
    assert doc["frames_sent"] == 20 and doc["loops"] == 2
    assert doc["frames_processed"] >= 1
    assert doc["unexpected_outputs"] == 0 and doc["size_mismatches"] == 0
    assert doc["frames_scored"] == doc["frames_processed"]
    assert doc["topics"]["image"] == "/front/image" and "image:=/front/image" in doc["node"][
        "command"]
    assert 0 < doc["processed_fraction"] <= 1
    answered = [f for f in doc["frames"] if f["t_received"] is not None]
    assert all(f["width"] in (0.25, 0.5, 0.75, 1.0) for f in answered)
    assert all(f["latency_ms"] > 0 for f in answered)
    assert sum(r["frames"] for r in doc["widths"].values()) == doc["frames_processed"]
    # the integer 12 was sent as the double the parameter is; 0.3 is no width of the model
    fps, width = doc["param_changes"]
    assert fps["name"] == "target_fps" and fps["successful"] is True
    assert width["successful"] is False and "0.25" in width["reason"]
    # the battery ends at 5%, under the last threshold (15%): the node caps the width at 0.25
    assert doc["width_timeline"][-1]["width"] == 0.25
    # the reason comes from the node's status (the replay waits for one after the last switch)
    assert "battery" in doc["width_timeline"][-1]["reason"]
    assert doc["battery_timeline"][0][1] == 1.0 and doc["battery_timeline"][-1][1] == 0.05
    assert doc["node"]["exit_code"] == 0 and doc["node"]["widths"] == [0.25, 0.5, 0.75, 1.0]
    assert "width 1" in (tmp_path / "node.log").read_text()


@pytest.mark.dds
def test_replay_reports_the_operating_point_of_every_answer(tmp_path, checkpoint, dataset):
    bag = tmp_path / "bag"
    bagio.write_dataset_bag(dataset, bag, rate_hz=10)
    config = _config(checkpoint, tmp_path, target_fps=10.0)
    config.node_params["input_sizes"] = [48, 64, 32, 48]
    config.node_params["resolution"] = [32, 48]
    config.node_params["adaptive"] = False  # with width 1.0: the point 1.0@32x48 is held
    result = run_replay(bag, dataclasses.replace(config, adaptive=False, width=1.0))
    doc = result.doc
    answered = [f for f in doc["frames"] if f["t_received"] is not None]
    assert answered and all(f["point"] == "1.0@32x48" for f in answered)
    assert doc["points"]["1.0@32x48"]["frames"] == doc["frames_processed"]
    assert doc["size_mismatches"] == 0   # labels still come at the camera's 60x80


@pytest.mark.dds
def test_running_node_compressed_bag_matches_offline_inference(tmp_path, checkpoint, dataset):
    """--running-node: a node started elsewhere (here by the test) with compressed input; the
    replay pins its width through the parameter service before the first frame."""
    bag = tmp_path / "bag"
    bagio.write_dataset_bag(dataset, bag, rate_hz=10, compressed="png", storage="sqlite3")
    topics = bagread.resolve_topics(bagread.inspect_bag(bag))
    started = ReplayConfig(model_path=str(checkpoint),
                           node_params={"backend": "torch", "device": "cpu"})
    params_file = write_params_file(tmp_path / "params.yaml", node_params(started, topics))
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    with NodeProcess(replay_node_command(started, topics, params_file), tmp_path / "own.log",
                     env) as node:
        result = run_replay(bag, ReplayConfig(spawn_node=False, width=0.5, domain_id=DOMAIN,
                                              settle_s=5.0, model_path=str(checkpoint),
                                              startup_timeout_s=90.0))
    assert node.exit_code == 0, node.tail()
    doc = result.doc
    assert doc["node"]["spawned"] is False and doc["node"]["exit_code"] is None
    (pin,) = doc["param_changes"]
    assert (pin["name"], pin["value"], pin["successful"]) == ("width", 0.5, True)
    assert doc["frames_processed"] >= 1 and doc["unexpected_outputs"] == 0
    assert set(doc["widths"]) == {"0.5"}  # the pin came before the first frame
    assert doc["width_timeline"][-1]["width"] == 0.5

    # what came over DDS is what the runtime computes for that frame at width 0.5
    engine = load_engine(checkpoint, backend="torch", device="cpu", warmup_repeats=1)
    start = bagio.DEFAULT_START_NS
    frames = {start + i * 100_000_000: dataset.load(i) for i in range(len(dataset))}
    received = {f["stamp_ns"] for f in doc["frames"] if f["t_received"] is not None}
    assert received and received <= set(frames)
    overall = result.scores.confusion()
    expected_cm = np.zeros_like(overall)
    for stamp in received:
        rgb, labels = frames[stamp]
        pred = engine.infer(rgb, 0.5)
        assert pred.shape == FRAME_SIZE
        valid = labels != 255
        np.add.at(expected_cm, (labels[valid].astype(int), pred[valid].astype(int)), 1)
    agreement = np.minimum(expected_cm, overall).sum() / overall.sum()
    assert agreement > 0.99  # thread counts differ between processes: rare argmax ties


def test_node_command_wires_the_bag_topics(tmp_path):
    frames = [(np.zeros((8, 10, 3), np.uint8), np.zeros((8, 10), np.uint8))] * 2
    info = bagio.write_frames_bag(tmp_path / "bag", frames, compressed="png")
    topics = bagread.resolve_topics(info)
    config = ReplayConfig(node_name="/robot/seg", labels_topic="/seg/labels", width=0.5,
                          target_fps=10, model_path="m.safetensors",
                          node_params={"backend": "torch", "min_dwell_s": 1})
    params = node_params(config, topics)
    assert params["adaptive"] is False and params["width"] == 0.5
    assert params["input_transport"] == "compressed" and params["target_fps"] == 10.0
    assert params["model_path"].endswith("m.safetensors")
    assert params["min_dwell_s"] == 1  # the node takes integers for doubles itself
    cmd = replay_node_command(config, topics, tmp_path / "p.yaml")
    assert cmd[1:cmd.index("--ros-args")] == ["-m", "slimseg_ros.ros.entry", "slimseg_node"]
    remaps = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-r"]
    assert remaps == ["__node:=seg", "__ns:=/robot", "image:=/camera/image_raw",
                      "battery_state:=/battery_state", "labels:=/seg/labels",
                      "image/compressed:=/camera/image_raw/compressed"]
    written = write_params_file(tmp_path / "p.yaml", params).read_text()
    assert "ros__parameters" in written and "/**" in written


@pytest.mark.dds
def test_refuses_to_replay_beside_another_camera():
    """Two replays (or a live camera) on one domain would mix frames: refuse with advice."""
    from sensor_msgs.msg import Image

    from slimseg_ros.ros.client import Probe, wait_until
    from slimseg_ros.ros.client.replay_client import ReplayClient

    with ReplayClient(node_name="/slimseg", publish_topics={"/cam": "sensor_msgs/msg/Image"},
                      image_topic="/cam", labels_topic="/labels", domain_id=DOMAIN) as client, \
            Probe(domain_id=DOMAIN, labels_topic=None, probe_name="other_camera") as other:
        client.check_alone([])  # alone: fine
        other.publisher(Image, "/cam", 1)
        assert wait_until(lambda: client.probe.node.count_publishers("/cam") > 1, 5.0)
        with pytest.raises(RuntimeError, match=r"1 other publisher\(s\) on /cam.*--domain-id"):
            client.check_alone([])
