"""The node as its own process, started the way users start it, fed from other processes.

Covers: ``--ros-args --params-file config/slimseg.yaml -r image:=/camera/image_raw``; 640x480
and 1280x720 rgb8 frames from a reliable and from a best-effort publisher in another process
(what arrived is printed: ``pytest -s`` shows it); the shipped Fast DDS large-data profile on the
publishing side; SIGTERM ends the node with exit status 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from slimseg_ros.ros.harness import (  # noqa: E402
    Collector, isolate_ros_domain, make_header, make_image, make_test_checkpoint, wait_until)

isolate_ros_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402

from slimseg_ros.ros import qos  # noqa: E402

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


class Probe:
    """This process's side: a node spinning in a thread with collectors."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("slimseg_process_probe", context=self.context)
        self.labels = Collector(self.node, Image, "/labels", QoSProfile(depth=50))
        self.width = Collector(self.node, Float32, "/slimseg/width", qos.latched_qos())
        self.diagnostics = Collector(self.node, DiagnosticArray, "/diagnostics", keep=5)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def status(self) -> dict[str, str]:
        """The newest status of the node, {} before the first."""
        for array in reversed(self.diagnostics.snapshot()):
            for s in array.status:
                if s.name == "slimseg: segmentation":
                    return {kv.key: kv.value for kv in s.values}
        return {}

    def fresh_status(self, after: float, timeout: float = DEADLINE) -> dict[str, str]:
        """The first status the node made after wall time ``after`` (waits for it)."""
        def find():
            for array in self.diagnostics.snapshot():
                made = array.header.stamp.sec + array.header.stamp.nanosec * 1e-9
                for s in array.status:
                    if made > after and s.name == "slimseg: segmentation":
                        return {kv.key: kv.value for kv in s.values}
            return None
        found = wait_until(find, timeout)
        assert found, "no diagnostics from the node"
        return found

    def wait_status(self, predicate, timeout: float = DEADLINE) -> dict[str, str]:
        found = wait_until(lambda: (lambda s: s if s and predicate(s) else None)(self.status()),
                           timeout)
        assert found, f"no matching diagnostics; newest: {self.status()}"
        return found

    def publisher(self, reliability: ReliabilityPolicy):
        return self.node.create_publisher(
            Image, TOPIC, QoSProfile(depth=1, reliability=reliability))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def probe():
    p = Probe()
    yield p
    p.close()


@pytest.fixture(scope="module")
def node_process(checkpoint: Path, probe: Probe, tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "node.log"
    cmd = [sys.executable, "-m", "slimseg_ros.ros.node",
           "--ros-args", "--params-file", str(CONFIG),
           "-r", f"image:={TOPIC}", "-p", f"model_path:={checkpoint}", "-p", "backend:=torch"]
    with open(log, "wb") as stream:
        proc = subprocess.Popen(cmd, env=node_env(), stdout=stream, stderr=subprocess.STDOUT)
    try:
        up = probe.width.wait_for(lambda m: True, DEADLINE)  # ~/width is latched: sent at start
        assert up is not None, f"node did not start:\n{log.read_text()}"
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _frame(size: tuple[int, int], stamp: int) -> Image:
    w, h = size
    rgb = np.random.default_rng(stamp % 97).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return make_image(rgb, "rgb8", make_header(stamp, "camera"))


def test_params_file_and_remap_run_the_node(node_process, probe: Probe) -> None:
    pub = probe.publisher(ReliabilityPolicy.RELIABLE)
    try:
        msg = _frame((64, 48), 11)
        got = wait_until(lambda: pub.publish(msg) or probe.labels.wait_for_stamp(11, 0.5),
                         DEADLINE)
        assert got is not None and (got.height, got.width) == (48, 64)
        assert got.header.frame_id == "camera"
    finally:
        probe.node.destroy_publisher(pub)


def test_large_frames_from_a_reliable_publisher_all_arrive(node_process, probe: Probe) -> None:
    pub = probe.publisher(ReliabilityPolicy.RELIABLE)
    try:
        probe.wait_status(lambda s: s["input_reliability"].startswith("reliable"))
        report = {}
        for size in SIZES:
            answered = 0
            for i in range(5):
                stamp = 1_000_000_000 + 100_000 * size[0] + i
                pub.publish(_frame(size, stamp))
                got = probe.labels.wait_for_stamp(stamp, 20.0)
                if got is not None and (got.width, got.height) == size:
                    answered += 1
            report[f"{size[0]}x{size[1]}"] = f"{answered}/5"
        print(f"\nreliable publisher -> node (auto QoS): answered {report}")
        assert report == {f"{w}x{h}": "5/5" for w, h in SIZES}
    finally:
        probe.node.destroy_publisher(pub)


def test_best_effort_publisher_is_matched_and_what_arrives_is_answered(
        node_process, probe: Probe) -> None:
    pub = probe.publisher(ReliabilityPolicy.BEST_EFFORT)
    try:
        probe.wait_status(lambda s: s["input_reliability"].startswith("best_effort"))
        report = {}
        for size in ((320, 240), *SIZES):
            before = probe.fresh_status(time.time())
            stamps = [2_000_000_000 + 100_000 * size[0] + i for i in range(10)]
            for s in stamps:
                pub.publish(_frame(size, s))
                time.sleep(0.1)
            time.sleep(1.0)  # frames in flight land; then a status made after that counts them
            after = probe.fresh_status(time.time())
            received = int(after["received_frames"]) - int(before["received_frames"])
            answered = len(probe.labels.arrival_of(stamps))
            report[f"{size[0]}x{size[1]}"] = {"sent": 10, "reached_node": received,
                                            "answered": answered}
        print(f"\nbest-effort publisher, default Fast DDS profile -> node: {report}")
        assert report["320x240"]["reached_node"] > 0  # small frames do get through
        for entry in report.values():
            assert entry["answered"] <= entry["reached_node"]
    finally:
        probe.node.destroy_publisher(pub)


def test_best_effort_camera_with_the_large_data_profile_gets_through(
        node_process, probe: Probe) -> None:
    probe.wait_status(lambda s: "no publisher" in s["input_reliability"], DEADLINE)
    before = int(probe.fresh_status(time.time())["received_frames"])
    env = dict(node_env(), FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    cmd = [sys.executable, "-m", "slimseg_ros.ros.bench_node", "camera", "--camera", "640x480",
           "--rate", "5", "--count", "10", "--reliability", "best_effort", "--topic", TOPIC,
           "--first-stamp", "4000000000"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["matched_subscriptions"] >= 1
    stamps = [4_000_000_000 + i for i in range(10)]
    wait_until(lambda: len(probe.labels.arrival_of(stamps)) == 10, 5.0)
    received = int(probe.fresh_status(time.time())["received_frames"]) - before
    answered = len(probe.labels.arrival_of(stamps))
    print(f"\nbest-effort 640x480 camera with {PROFILE.name}: {received} of 10 frames reached "
          f"the node, {answered} answered")
    # Without the profile 0-1 of 10 get through (previous test); with it they cross DDS. (A
    # frame can still be replaced in the node's depth-1 reader history if the executor stalls
    # for a whole frame interval on a loaded machine, hence not == 10.)
    assert received >= 8


def test_sigterm_stops_the_node_cleanly(node_process) -> None:
    proc, log = node_process
    assert proc.poll() is None, log.read_text()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"node still running {DEADLINE:.0f} s after SIGTERM")
    assert code == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


def test_unusable_model_exits_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    done = subprocess.run(
        [sys.executable, "-m", "slimseg_ros.ros.node", "--ros-args", "-r", "__node:=slimseg_bad",
         "-p", f"model_path:={missing}"], env=node_env(), capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot load the model" in errors[0] and str(missing) in errors[0]
    assert "Traceback" not in done.stderr
