"""Replay through the real node over DDS (a spawned ``slimseg_ros.ros.node`` process).

A tiny random model keeps it fast; what is checked is the plumbing: frames matched by stamp,
labels at the input size, the width attribution, parameter changes through the service,
battery messages reaching the controller, compressed input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zlib

import numpy as np
import pytest
import torch
import yaml

from slimseg_ros.data import build_dataset
from slimseg_ros.data import bagread
from slimseg_ros.eval import bagio
from slimseg_ros.eval.replay import (
    ParamEvent, ReplayConfig, node_command, node_params, run_replay)
from slimseg_ros.model.checkpoint import random_meta, save_checkpoint
from slimseg_ros.model.config import ModelConfig
from slimseg_ros.model.slimseg import SlimSegNet
from slimseg_ros.runtime import load_engine

pytest.importorskip("rclpy")

# Our own domains (the node tests draw theirs from 1..100; 215..232 stay clear of Linux's
# ephemeral ports), so runs never cross.
DOMAIN = 215 + os.getpid() % 9
NET_SIZE = (48, 64)
FRAME_SIZE = (60, 80)  # differs from the network input: labels must still come at this size


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    config = ModelConfig()
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_checkpoint(path, SlimSegNet(config).eval(), random_meta(config, NET_SIZE))
    return path


@pytest.fixture(scope="module")
def dataset():
    return build_dataset("synthetic", None, "val", n=10, size=FRAME_SIZE, num_classes=11)


def _config(checkpoint, tmp_path, **kw):
    return ReplayConfig(model_path=str(checkpoint), domain_id=DOMAIN, settle_s=5.0,
                        node_params={"backend": "torch", "device": "cpu"},
                        node_log=tmp_path / "node.log", **kw)


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
    assert "battery" in doc["width_timeline"][-1]["reason"]
    assert doc["battery_timeline"][0][1] == 1.0 and doc["battery_timeline"][-1][1] == 0.05
    assert doc["node"]["exit_code"] == 0 and doc["node"]["widths"] == [0.25, 0.5, 0.75, 1.0]
    assert "width 1" in (tmp_path / "node.log").read_text()


def test_running_node_compressed_bag_matches_offline_inference(tmp_path, checkpoint, dataset):
    """--running-node: a node started elsewhere (here by the test) with compressed input; the
    replay pins its width through the parameter service before the first frame."""
    bag = tmp_path / "bag"
    bagio.write_dataset_bag(dataset, bag, rate_hz=10, compressed="png", storage="sqlite3")
    topics = bagread.resolve_topics(bagread.inspect_bag(bag))
    started = ReplayConfig(model_path=str(checkpoint),
                           node_params={"backend": "torch", "device": "cpu"})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": node_params(started,
                                                                                   topics)}}))
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    with open(tmp_path / "own.log", "wb") as log:
        proc = subprocess.Popen(node_command(started, topics, params_file), env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        result = run_replay(bag, ReplayConfig(spawn_node=False, width=0.5, domain_id=DOMAIN,
                                              settle_s=5.0, model_path=str(checkpoint),
                                              startup_timeout_s=90.0))
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
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


def test_recording_keeps_label_pixels(tmp_path):
    """The client stores labels zlib-compressed; the scorer reads them back row by row."""
    from slimseg_ros.eval.replay import _prediction

    pred = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = np.zeros((3, 6), np.uint8)
    padded[:, :4] = pred
    label = type("L", (), dict(data_z=zlib.compress(padded.tobytes()), encoding="mono8",
                               step=6, height_px=3, width_px=4))()
    np.testing.assert_array_equal(_prediction(label), pred)


def test_start_parameters_get_the_declared_types():
    """`--param min_dwell_s=1` must not fail the node's start on an INTEGER for a DOUBLE."""
    from slimseg_ros.ros.replay_client import typed_node_params

    typed = typed_node_params({"min_dwell_s": 1, "battery_thresholds": [1, 0.2],
                               "overrun_frames": 3, "adaptive": True, "unknown": 1})
    assert typed == {"min_dwell_s": 1.0, "battery_thresholds": [1.0, 0.2],
                     "overrun_frames": 3, "adaptive": True, "unknown": 1}
    assert isinstance(typed["min_dwell_s"], float) and isinstance(typed["overrun_frames"], int)


def test_refuses_to_replay_beside_another_camera():
    """Two replays (or a live camera) on one domain would mix frames: refuse with advice."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from slimseg_ros.ros.replay_client import ReplayClient

    client = ReplayClient(node_name="/slimseg", publish_topics={"/cam": "sensor_msgs/msg/Image"},
                          image_topic="/cam", labels_topic="/labels", domain_id=DOMAIN)
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    other = Node("other_camera", context=context)
    try:
        client._check_alone([])  # alone: fine
        other.create_publisher(Image, "/cam", 1)
        for _ in range(100):  # discovery takes a moment
            if client._node.count_publishers("/cam") > 1:
                break
            time.sleep(0.05)
        with pytest.raises(RuntimeError, match=r"1 other publisher\(s\) on /cam.*--domain-id"):
            client._check_alone([])
    finally:
        other.destroy_node()
        rclpy.shutdown(context=context)
        client.close()
