"""Faults thrown at the node over real DDS: fuzzed images, a parameter storm, bad model files.

The node survives each and is still useful afterwards: it answers a good frame, fails on no
frame, accounts for every message, answers every parameter call (a refusal says why) and ends a
start on an unusable model file with one line that names the file. Small, seeded counts: the
measurements with thousands of messages are in docs/log/reliability.md. Covered elsewhere, not
repeated here: hand-made malformed images and decoder noise (test_ros_node.py), a burst of
frames (latest frame wins, test_ros_node.py), a killed camera's ghost (test_ros_node.py,
test_ros_parts.py), signals at every moment of a start (test_ros_entry.py, test_ros_process.py,
test_ros_lifecycle.py), a missing model file and a directory (test_ros_process.py,
test_ros_node.py).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from faults import (  # noqa: E402
    PARAMETER_CHOICES, bad_model_files, fuzzed_compressed, fuzzed_raw, random_parameter_set)
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from slimseg_ros.data.pixels import encode_compressed  # noqa: E402
from slimseg_ros.ros.client import Probe, wait_until  # noqa: E402
from slimseg_ros.ros.conversions import make_header, make_image  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode, StartupError  # noqa: E402

pytestmark = [pytest.mark.dds, pytest.mark.slow]

DEADLINE = 30.0  # seconds; generous because a training job may share the 2 cores
LAX = {"target_fps": 0.1, "overrun_frames": 1000}  # no frame-rate pressure, whatever the load
_stamps = iter(range(1_000_000_000, 1 << 62, 1_000_003))


@dataclass
class Env:
    node: SlimSegNode
    probe: Probe
    camera: object


@pytest.fixture(scope="module")
def env(make_checkpoint):
    checkpoint = make_checkpoint(input_size=(64, 96))
    probe = Probe("/slimseg_faults", labels_topic="/faults/labels", labels_qos=10)
    node = SlimSegNode("slimseg_faults", context=probe.context, cli_args=[
        "--ros-args", "-r", "image:=/faults/image", "-r", "labels:=/faults/labels"],
        parameter_overrides=[Parameter("backend", value="torch"),
                             Parameter("model_path", value=str(checkpoint)),
                             *(Parameter(k, value=v) for k, v in LAX.items())])
    probe.add_node(node)
    probe.wait_started(DEADLINE * 4)
    yield Env(node, probe, probe.publisher(Image, "/faults/image", 10))
    probe.close()  # stops the node too


def _answers_a_good_frame(env: Env) -> bool:
    """Publish a good frame until its labels come back."""
    stamp = next(_stamps)
    rgb = np.random.default_rng(stamp % 997).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = make_image(rgb, "rgb8", make_header(stamp, "camera"))
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        env.camera.publish(msg)
        if env.probe.labels.wait_for_stamp(stamp, 0.5) is not None:
            return True
    return False


def _balanced(env: Env) -> bool:
    """Every message taken in is processed, rejected, failed or dropped for a newer one."""
    s = env.node.stats
    with s.lock:
        done = s.processed + s.rejected + s.failed
    return env.node._slot.put_count == done + env.node._slot.dropped


def _set(env: Env, **values) -> None:
    for ok, reason in env.probe.set_parameters(values, DEADLINE):
        assert ok, reason


def test_fuzzed_images_are_rejected_and_good_frames_still_answered(env: Env) -> None:
    assert _answers_a_good_frame(env)
    rng = np.random.default_rng(0)
    rejected_before = env.node.stats.rejected
    for _ in range(60):
        env.camera.publish(fuzzed_raw(rng, make_header(next(_stamps))))
        time.sleep(0.002)
    _set(env, input_transport="compressed")
    try:
        pub = env.probe.publisher(CompressedImage, "/faults/image/compressed", 10)
        assert wait_until(lambda: pub.get_subscription_count() > 0, DEADLINE)
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        good = [encode_compressed(rgb, "png"), encode_compressed(rgb, "jpeg")]
        for _ in range(20):
            pub.publish(fuzzed_compressed(rng, make_header(next(_stamps)), good))
            time.sleep(0.005)
        assert wait_until(lambda: _balanced(env), DEADLINE)
        env.probe.node.destroy_publisher(pub)
    finally:
        _set(env, input_transport="raw")
    assert _answers_a_good_frame(env)
    assert wait_until(lambda: _balanced(env), DEADLINE)
    assert env.node.stats.failed == 0  # a bad message is rejected, never an engine failure
    assert env.node.stats.rejected > rejected_before
    assert set(env.node.stats.rejected_by_kind) >= {"size", "encoding"}
    assert "\n" not in env.node.stats.last_rejection  # each rejection is one line


def test_a_parameter_storm_is_answered_and_leaves_the_node_consistent(env: Env) -> None:
    rng = random.Random(0)
    refused = 0
    names = set()
    for _ in range(40):
        values = random_parameter_set(rng)
        (ok, reason), = env.probe.set_parameters(values, DEADLINE)  # answered, always
        (name, _), = values.items()
        names.add(name)
        if name in ("no_such_parameter", "model_path"):  # unknown; read-only while running
            assert not ok, f"{values} accepted"
        if not ok:
            refused += 1
            assert reason.strip() and "\n" not in reason, f"{values}: {reason!r}"
    assert 0 < refused < 40 and len(names) > len(PARAMETER_CHOICES) // 2
    # back to a known state: limits first (a pin must lie within them), then a pin
    _set(env, input_transport="raw", input_reliability="auto", max_image_pixels=3840 * 2160,
         min_width=0.0, max_width=1.0, **LAX)
    _set(env, adaptive=False, width=0.5)
    assert env.probe.wait_width(0.5, DEADLINE)
    assert _answers_a_good_frame(env)
    got = env.probe.get_parameters(["width", "adaptive"], DEADLINE)
    status = env.probe.fresh_status(time.time(), DEADLINE)
    assert status is not None
    assert got == {"width": 0.5, "adaptive": False}
    assert float(status["width"]) == 0.5 and status["adaptive"] == "false"
    assert env.node.stats.failed == 0
    _set(env, adaptive=True)


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, make_checkpoint):
    return bad_model_files(tmp_path_factory.mktemp("bad_models"),
                           make_checkpoint(input_size=(64, 96)))


@pytest.mark.parametrize("kind, words", [
    ("empty", "not a readable safetensors file"),
    ("random bytes", "not a readable safetensors file"),
    ("truncated", "not a readable safetensors file"),
    ("no slimseg metadata", "a safetensors file without slimseg metadata"),
    ("metadata not JSON", "the slimseg metadata is not valid JSON"),
    ("a pickle", "looks like a PyTorch pickle"),
])
def test_an_unusable_model_file_stops_the_start_with_one_line(env: Env, bad_models, kind: str,
                                                              words: str) -> None:
    path = bad_models[kind]
    with pytest.raises(StartupError) as err:
        SlimSegNode("slimseg_bad_model", context=env.node.context, parameter_overrides=[
            Parameter("backend", value="torch"), Parameter("model_path", value=str(path))])
    message = str(err.value)
    assert message.startswith(f"cannot load the model: {path}") and words in message
    assert "\n" not in message
