"""The node as its own process, started the way users start it, fed from other processes.

Covers: ``--ros-args --params-file config/slimseg.yaml -r image:=/camera/image_raw -p
target_fps:=30`` (an integer for a double); 640x480 and 1280x720 rgb8 frames from a reliable
publisher in another process, and frames from a best-effort one, each answered with its header;
the shipped Fast DDS large-data profile on the publishing side carries 640x480 best-effort
frames; SIGTERM while frames stream ends the node with exit status 0 and no publish error; an
unusable model ends it with status 1 and one line; parameter calls are answered (and checked
against the checkpoint) while the engines are still being built, frames meanwhile are counted as
dropped, and SIGTERM then does not wait for the build. (How many best-effort frames cross without
the profile depends on the machine's load: docs/log/node.md has the measurement.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from slimseg_ros.data.stamps import stamp_ns  # noqa: E402
from slimseg_ros.ros.client import NodeProcess, Probe, node_command, wait_until  # noqa: E402

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "slimseg.yaml"
PROFILE = ROOT / "config" / "fastdds_large_data.xml"
TOPIC = "/camera/image_raw"
DEADLINE = 60.0
SIZES = ((640, 480), (1280, 720))  # width x height


def node_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


@pytest.fixture(scope="module")
def probe():
    with Probe("/slimseg", labels_topic="/labels", labels_qos=50) as p:
        yield p


@pytest.fixture(scope="module")
def node_process(make_checkpoint, probe: Probe, tmp_path_factory):
    checkpoint = make_checkpoint(input_size=(64, 96))
    cmd = node_command(params_file=CONFIG, remaps=[f"image:={TOPIC}"],
                       params=[f"model_path:={checkpoint}", "backend:=torch", "target_fps:=30"])
    node = NodeProcess(cmd, tmp_path_factory.mktemp("node") / "node.log", node_env())
    try:
        probe.wait_started(DEADLINE, node.problem)  # ~/width is latched: sent at start
        yield node
    finally:
        node.stop()


def _answer(probe: Probe, publisher, msg: Image, timeout: float = DEADLINE) -> Image | None:
    """Publish ``msg`` until labels with its stamp come back (best effort may lose a copy)."""
    stamp = stamp_ns(msg.header)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        got = probe.labels.wait_for_stamp(stamp, 0.5)
        if got is not None:
            return got
    return None


def test_an_integer_for_a_double_on_the_command_line_starts_the_node(node_process,
                                                                     probe: Probe) -> None:
    assert probe.get_parameters(["target_fps"]) == {"target_fps": 30.0}


def test_params_file_and_remap_run_the_node(node_process, probe: Probe, camera_frame) -> None:
    pub = probe.publisher(Image, TOPIC, QoSProfile(depth=1))
    try:
        got = _answer(probe, pub, camera_frame((64, 48), 11))
        assert got is not None and (got.height, got.width) == (48, 64)
        assert got.header.frame_id == "camera"
    finally:
        probe.node.destroy_publisher(pub)


def test_large_frames_from_a_reliable_publisher_all_arrive(node_process, probe: Probe,
                                                          camera_frame) -> None:
    pub = probe.publisher(Image, TOPIC,
                          QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert probe.wait_status(lambda s: s["input_reliability"].startswith("reliable"),
                                 DEADLINE)
        for size in SIZES:
            for i in range(5):  # one at a time, each sent once
                stamp = 1_000_000_000 + 100_000 * size[0] + i
                msg = camera_frame(size, stamp, frame_id="cam_large")
                pub.publish(msg)
                got = probe.labels.wait_for_stamp(stamp, DEADLINE)
                assert got is not None, f"{size} frame {i} was not answered"
                assert (got.width, got.height) == size and got.header == msg.header
    finally:
        probe.node.destroy_publisher(pub)


def test_best_effort_publisher_is_matched_and_its_frames_are_answered(
        node_process, probe: Probe, camera_frame) -> None:
    pub = probe.publisher(Image, TOPIC,
                          QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        # the node's `auto` reliability follows the publisher found on the topic
        assert probe.wait_status(lambda s: s["input_reliability"].startswith("best_effort"),
                                 DEADLINE)
        for i in range(3):
            msg = camera_frame((320, 240), 2_000_000_000 + i, frame_id="cam_best_effort")
            got = _answer(probe, pub, msg)
            assert got is not None and (got.width, got.height) == (320, 240)
            assert got.header == msg.header
    finally:
        probe.node.destroy_publisher(pub)


def test_best_effort_camera_with_the_large_data_profile_gets_through(
        node_process, probe: Probe, camera_process) -> None:
    assert probe.wait_status(lambda s: "no publisher" in s["input_reliability"], DEADLINE)
    env = dict(node_env(), FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    report = camera_process("--size", "640x480", "--count", "10", "--reliability",
                            "best_effort", "--topic", TOPIC, "--first-stamp", "4000000000",
                            "--frame-id", "cam_profile", env=env)
    assert report["matched_subscriptions"] >= 1
    # Without the profile a 640x480 best-effort frame does not cross (ENVIRONMENT.md); with it
    # every frame sent one at a time is answered, at its size and with its header.
    assert report["answered"] == {str(s): [480, 640, "cam_profile"] for s in report["sent"]}
    assert len(report["sent"]) == 10


def test_sigterm_while_frames_stream_stops_the_node_cleanly(node_process: NodeProcess,
                                                          probe: Probe, camera_frame) -> None:
    """Once, a SIGTERM stop raced a publish: 'publisher's context is invalid'."""
    assert node_process.exit_code is None, node_process.log_text()
    pub = probe.publisher(Image, TOPIC,
                          QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    streaming = threading.Event()
    streaming.set()

    def camera() -> None:
        stamp = 5_000_000_000
        while streaming.is_set():
            pub.publish(camera_frame((320, 240), stamp))
            stamp += 1
            time.sleep(0.005)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        assert wait_until(lambda: any((s or 0) >= 5_000_000_010
                                      for _, s, _ in probe.labels.stamped()), DEADLINE)
        node_process.send(signal.SIGTERM)
        try:
            code = node_process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"node still running {DEADLINE:.0f} s after SIGTERM")
    finally:
        streaming.clear()
        feeder.join(10)
        probe.node.destroy_publisher(pub)
    log = node_process.log_text()
    assert code == 0, log[-2000:]
    assert "stopping on SIGTERM" in log
    for bad in ("Traceback", "Failed to publish", "context is invalid", "frame failed"):
        assert bad not in log, log[-3000:]


def test_parameters_answer_while_the_engines_build_and_sigterm_does_not_wait(
        tmp_path: Path, make_checkpoint, camera_frame, held_build) -> None:
    """The node is in the graph and answers ``ros2 param`` from the start, checked against the
    checkpoint's widths, while the engines build; frames meanwhile are counted, not kept; and a
    build cannot hold a stop hostage (the engine cache's lock held by the test keeps the build
    going)."""
    node = NodeProcess(node_command(
        remaps=["__node:=slimseg_building", "image:=/building/image"],
        params=[f"model_path:={make_checkpoint(input_size=(64, 96))}",
                "backend:=onnxruntime", f"engine_cache_dir:={held_build.cache}"]),
        tmp_path / "node.log", node_env())
    try:
        with Probe("/slimseg_building", labels_topic=None) as p:
            assert wait_until(lambda: p.parameter_service_ready() or node.problem(),
                              DEADLINE * 2), "no parameter service"
            assert node.problem() is None, node.problem()
            got = p.get_parameters(["widths", "class_names", "backend"], DEADLINE)
            assert got["widths"] == [0.25, 0.5, 0.75, 1.0] and len(got["class_names"]) == 11
            (ok, reason), = p.set_parameters({"width": 0.3}, DEADLINE)
            assert not ok and "(0.25, 0.5, 0.75, 1)" in reason
            (ok, reason), = p.set_parameters({"width": 0.5}, DEADLINE)
            assert ok, reason
            assert wait_until(lambda: p.get_parameters(["adaptive"]).get("adaptive")
                              is False, DEADLINE)  # a pin before the engines exist
            status = p.wait_status(lambda s: s.get("state", "").startswith("starting"),
                                   DEADLINE)
            assert status is not None, "no status while starting"
            pub = p.publisher(Image, "/building/image", 10)
            assert wait_until(lambda: pub.get_subscription_count() > 0, DEADLINE)

            def counted(s: dict) -> bool:
                # a camera keeps sending: one frame can fall into the input QoS chooser's
                # switch to the reliable publisher that just appeared
                pub.publish(camera_frame((64, 48), 7))
                return int(s["received_frames"]) >= 1 and int(s["dropped_frames"]) >= 1
            assert p.wait_status(counted, DEADLINE)
            assert p.current_width() is None  # ~/width only once the engines are ready
            held_build.sigterm(node)
    finally:
        node.stop()


def test_unusable_model_exits_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    node = NodeProcess(node_command(remaps=["__node:=slimseg_bad"],
                                    params=[f"model_path:={missing}"]),
                       tmp_path / "node.log", node_env())
    try:
        code = node.wait(120)
    finally:
        node.stop()
    assert code == 1
    log = node.log_text()
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot load the model" in errors[0] and str(missing) in errors[0]
    assert "Traceback" not in log
