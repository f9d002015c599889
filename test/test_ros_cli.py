"""The real ROS 2 command line, as a user types it: ``ros2 launch``, ``ros2 run``,
``ros2 param``, ``ros2 topic echo``, ``ros2 lifecycle``, ``ros2 node list``.

Needs the wheels of ``../shared/ros2cli`` in this venv and the package's ROS files in its prefix
(``make venv`` does both when that folder exists; see its README); skipped otherwise. Every
command runs with ``AMENT_PREFIX_PATH`` = this venv, in the test run's ROS domain, with a ROS 2
daemon of its own (started here and stopped at the end, as a user's shell has one). Assertions
are on what the user reads. A fresh CLI participant sometimes does not see a node that is up
yet (ENVIRONMENT.md): commands that answer "Node not found" are repeated, as a user would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFIX = Path(sys.prefix)
ROS2 = PREFIX / "bin" / "ros2"
DEADLINE = 120.0


def _missing() -> str | None:
    try:
        import launch_ros  # noqa: F401
        import ros2cli  # noqa: F401
    except ImportError:
        return ("the ROS 2 command line is not installed in this venv: its wheels are in "
                "../shared/ros2cli (make venv installs them when that folder exists)")
    if not ROS2.exists():
        return f"no {ROS2}"
    if not (PREFIX / "share" / "slimseg_ros" / "package.xml").exists():
        return (f"slimseg_ros's ROS files are not in {PREFIX} (make venv links them: "
                "scripts/link_ros_files.py)")
    return None


MISSING = _missing()
pytestmark = [pytest.mark.dds, pytest.mark.slow,
              pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("ros2cli")
    values = dict(os.environ, AMENT_PREFIX_PATH=str(PREFIX), OMP_NUM_THREADS="1",
                  OMP_WAIT_POLICY="PASSIVE", ROS_LOG_DIR=str(work / "log"),
                  SLIMSEG_CACHE_DIR=str(work / "cache"), PYTHONUNBUFFERED="1")
    values.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    subprocess.run([str(ROS2), "daemon", "start"], env=values, capture_output=True, timeout=60)
    yield values
    subprocess.run([str(ROS2), "daemon", "stop"], env=values, capture_output=True, timeout=60)


def ros2(env: dict[str, str], *args: str, timeout: float = 60.0) -> str:
    """``ros2 ARGS`` once; what it printed (stdout and stderr)."""
    done = subprocess.run([str(ROS2), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return done.stdout + done.stderr


def ros2_until(env: dict[str, str], done, *args: str, timeout: float = DEADLINE) -> str:
    """``ros2 ARGS``, repeated until ``done(what it printed)`` (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        out = ros2(env, *args)
        if done(out) or time.monotonic() > deadline:
            return out
        time.sleep(1.0)


def ros2_found(env: dict[str, str], *args: str, timeout: float = DEADLINE) -> str:
    """``ros2 ARGS``, repeated while the node is not found yet (discovery, or still starting)."""
    return ros2_until(env, lambda out: "Node not found" not in out and "not available" not in out
                      and "Waiting for service" not in out, *args, timeout=timeout)


class Running:
    """A ``ros2`` command running in its own session (a terminal's Ctrl-C goes to its whole
    process group, which :meth:`ctrl_c` imitates)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen([str(ROS2), *args], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def node_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"process started with pid \[(\d+)\]",
                                               self.text())]

    def wait_for(self, words: str, timeout: float = DEADLINE) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if words in self.text():
                return True
            time.sleep(0.2)
        return words in self.text()

    def ctrl_c(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:  # stuck: take the whole group down
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self._out.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def checkpoint(make_checkpoint) -> Path:
    return make_checkpoint(input_size=(64, 96))


# -- one launched node, used as an operator would -------------------------------------------------

@pytest.fixture(scope="module")
def launched(env, checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("launched")
    params = yaml.safe_load((ROOT / "config" / "slimseg.yaml").read_text())
    section = params["slimseg"]["ros__parameters"]
    section.update(model_path=str(checkpoint), backend="torch", target_fps=30, min_dwell_s=3)
    params_file = work / "robot.yaml"  # integers for doubles, as every ROS user writes them
    params_file.write_text(yaml.safe_dump(params))
    profile = work / "my_profile.xml"
    shutil.copy(ROOT / "config" / "fastdds_large_data.xml", profile)
    run = Running(env, work / "launch.log", "launch", "slimseg_ros", "seg.launch.py",
                  f"params_file:={params_file}", "image:=/cli/image",
                  f"fastdds_profile:={profile}")
    yield run, profile
    run.ctrl_c()
    run.wait()


def test_launch_with_arguments_and_topic_echo_once(env, launched) -> None:
    run, profile = launched
    out = ros2(env, "topic", "echo", "--once", "/slimseg/width", "std_msgs/msg/Float32",
               "--qos-durability", "transient_local", "--qos-reliability", "reliable",
               timeout=DEADLINE * 2)
    assert re.search(r"^data: (0\.25|0\.5|0\.75|1\.0)$", out, re.M), out + run.text()
    log = run.text()
    assert "[slimseg]: ready: torch on cpu" in log
    assert f"[slimseg]: Fast DDS profile {profile}" in log  # fastdds_profile:=PATH reached it
    assert "\x1b[" not in log  # no colour escapes in what launch writes to files
    assert "/slimseg" in ros2_until(env, lambda out: "/slimseg" in out.split(), "node", "list")


def test_param_get_set_describe_dump(env, launched) -> None:
    assert ros2_found(env, "param", "get", "/slimseg", "widths").strip() == (
        "Double values are: [0.25, 0.5, 0.75, 1.0]")
    # integers for doubles: from the parameters file and from `ros2 param set`
    assert ros2_found(env, "param", "get", "/slimseg", "target_fps").strip() == (
        "Double value is: 30.0")
    assert ros2_found(env, "param", "set", "/slimseg", "width", "1").strip() == (
        "Set parameter successful")
    assert ros2_found(env, "param", "get", "/slimseg", "adaptive").strip() == (
        "Boolean value is: False")
    assert ros2_found(env, "param", "set", "/slimseg", "width", "0.3").strip() == (
        "Setting parameter failed: width 0.3 is not one of the model's widths "
        "(0.25, 0.5, 0.75, 1)")
    assert ros2_found(env, "param", "set", "/slimseg", "target_fps", "fast").strip() == (
        "Setting parameter failed: target_fps takes a number (double; 30 and 30.0 both "
        "work); got a string 'fast'")
    assert "the node has no parameter 'target_fsp'; did you mean target_fps?" in ros2_found(
        env, "param", "set", "/slimseg", "target_fsp", "30")
    assert "read-only" in ros2_found(env, "param", "set", "/slimseg", "model_path", "/x")
    described = ros2_found(env, "param", "describe", "/slimseg", "width")
    for line in ("Parameter name: width", "Type: double", "Min value: 0.0", "Max value: 1.0",
                 "Additional constraints: one of the model's widths (see 'widths')"):
        assert line in described, described
    assert "Read only: true" in ros2_found(env, "param", "describe", "/slimseg", "widths")
    dumped = yaml.safe_load(ros2_found(env, "param", "dump", "/slimseg"))
    values = dumped["/slimseg"]["ros__parameters"]
    assert values["width"] == 1.0 and values["adaptive"] is False
    assert values["widths"] == [0.25, 0.5, 0.75, 1.0] and values["target_fps"] == 30.0
    assert ros2_found(env, "param", "set", "/slimseg", "adaptive", "true").strip() == (
        "Set parameter successful")


def test_resolution_pin_through_ros2_param_set(env, launched) -> None:
    """The operator's size pin (issue 13) through the real CLI; this node has one size."""
    assert ros2_found(env, "param", "set", "/slimseg", "resolution", "[32, 48]").strip() == (
        "Setting parameter failed: resolution 32x48 is not one of the input sizes (64x96); "
        "set input_sizes at start, or [0, 0] to release the size")
    assert ros2_found(env, "param", "set", "/slimseg", "resolution", "[64, 96]").strip() == (
        "Set parameter successful")
    assert ros2_found(env, "param", "get", "/slimseg", "adaptive").strip() == (
        "Boolean value is: False")
    assert ros2_found(env, "param", "set", "/slimseg", "adaptive", "true").strip() == (
        "Set parameter successful")
    assert ros2_found(env, "param", "get", "/slimseg", "resolution").strip() == (
        "Integer values are: [64, 96]")   # mirrors the size in use while adapting


def test_labels_echo_once_carries_the_camera_header(env, launched, camera_frame) -> None:
    from sensor_msgs.msg import Image

    from slimseg_ros.ros.client import Probe

    echo = subprocess.Popen([str(ROS2), "topic", "echo", "--once", "/labels",
                             "sensor_msgs/msg/Image", "--field", "header.frame_id"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with Probe("/slimseg", labels_topic="/labels", labels_qos=10) as probe:
            pub = probe.publisher(Image, "/cli/image", 10)
            stamp = 9_000_000_000
            deadline = time.monotonic() + DEADLINE
            while echo.poll() is None and time.monotonic() < deadline:
                stamp += 1  # frames until the user's `ros2 topic echo --once` has one
                pub.publish(camera_frame((64, 48), stamp, frame_id="cli_camera"))
                probe.labels.wait_for_stamp(stamp, 0.5)
        out, _ = echo.communicate(timeout=30)
    finally:
        if echo.poll() is None:
            echo.kill()
    assert out.split("\n")[0].strip() == "cli_camera", out


def test_ctrl_c_on_the_launch_stops_everything(env, launched) -> None:
    run, _ = launched
    pids = run.node_pids()
    assert pids and all(_alive(pid) for pid in pids)
    run.ctrl_c()
    assert run.wait() == 0, run.text()[-3000:]
    assert not any(_alive(pid) for pid in pids)
    log = run.text()
    assert "[slimseg]: stopping on SIGINT" in log and "process has finished cleanly" in log
    assert "Traceback" not in log and "Failed to publish" not in log


# -- other ways to start it ----------------------------------------------------------------------

def test_launch_without_arguments_answers_while_the_engines_build(env, tmp_path,
                                                                 held_build) -> None:
    """The shipped model with ``backend: auto`` and a cold engine cache: ``ros2 param get``
    answers, from the checkpoint's header, while the engines are still being built (the cache
    lock held here keeps the build from finishing), and Ctrl-C does not wait for the build."""
    cold = dict(env, SLIMSEG_CACHE_DIR=str(held_build.cache))
    run = Running(cold, tmp_path / "launch.log", "launch", "slimseg_ros", "seg.launch.py")
    try:
        out = ros2_found(cold, "param", "get", "/slimseg", "widths")
        assert out.strip() == "Double values are: [0.25, 0.5, 0.75, 1.0]", out + run.text()
        assert "class_0" not in ros2_found(cold, "param", "get", "/slimseg", "class_names")
        assert "ready:" not in run.text()  # answered before the engines exist
        # no fastdds_profile argument: the launch path gives the node the large-data profile
        assert "Fast DDS profile " in run.text() and "fastdds_large_data.xml" in run.text()
    finally:
        run.ctrl_c()
        code = run.wait()
    held_build.assert_abandoned(code, run.text())


def test_launch_exits_non_zero_when_the_node_cannot_start(env, checkpoint, tmp_path) -> None:
    run = Running(env, tmp_path / "launch.log", "launch", "slimseg_ros", "seg.launch.py",
                  f"model_path:={checkpoint}", "backend:=torch", "width:=0.3")
    code = run.wait()
    log = run.text()
    assert code != 0, log
    assert "width 0.3 is not one of the model's widths (0.25, 0.5, 0.75, 1)" in log
    assert "exited with status 1" in log


def test_ros2_run_starts_the_node_and_ctrl_c_stops_it(env, checkpoint, tmp_path) -> None:
    run = Running(env, tmp_path / "run.log", "run", "slimseg_ros", "slimseg_node", "--ros-args",
                  "-r", "__node:=slimseg_run", "-p", f"model_path:={checkpoint}",
                  "-p", "backend:=torch", "-p", "target_fps:=30")
    try:
        assert ros2_found(env, "param", "get", "/slimseg_run", "target_fps").strip() == (
            "Double value is: 30.0"), run.text()
        assert run.wait_for("[slimseg_run]: ready:"), run.text()
    finally:
        run.ctrl_c()
        code = run.wait()
    assert code == 0, run.text()[-3000:]
    assert "stopping on SIGINT" in run.text() and "Traceback" not in run.text()


def test_managed_launch_and_ros2_lifecycle(env, checkpoint, make_checkpoint, tmp_path) -> None:
    from slimseg_ros.model.config import ModelConfig

    other = make_checkpoint(ModelConfig(widths=(0.5, 1.0)), input_size=(64, 96), seed=1)
    run = Running(env, tmp_path / "launch.log", "launch", "slimseg_ros", "seg.launch.py",
                  "managed:=true", f"model_path:={checkpoint}", "backend:=torch")
    try:
        assert run.wait_for("[slimseg]: subscribed to"), run.text()  # autostart: active
        assert ros2_found(env, "lifecycle", "get", "/slimseg").strip() == "active [3]"
        assert ros2_found(env, "lifecycle", "set", "/slimseg", "deactivate").strip() == (
            "Transitioning successful")
        assert ros2_found(env, "lifecycle", "get", "/slimseg").strip() == "inactive [2]"
        assert "only while the node is unconfigured" in ros2_found(
            env, "param", "set", "/slimseg", "model_path", str(other))
        assert ros2_found(env, "lifecycle", "set", "/slimseg", "cleanup").strip() == (
            "Transitioning successful")
        assert ros2_found(env, "param", "set", "/slimseg", "model_path",
                          str(other)).strip() == "Set parameter successful"
        assert ros2_found(env, "lifecycle", "set", "/slimseg", "configure",
                          timeout=DEADLINE).strip() == "Transitioning successful"
        assert ros2_found(env, "param", "get", "/slimseg", "widths").strip() == (
            "Double values are: [0.5, 1.0]")
        assert ros2_found(env, "lifecycle", "set", "/slimseg", "activate").strip() == (
            "Transitioning successful")
        assert ros2_found(env, "lifecycle", "set", "/slimseg", "shutdown").strip() == (
            "Transitioning successful")
        code = run.wait()  # the node exits with 0 when finalized; launch is then done
    finally:
        run.ctrl_c()
        run.wait()
    log = run.text()
    assert code == 0, log[-3000:]
    assert "process has finished cleanly" in log and "Traceback" not in log


def test_camera_launch_starts_the_driver_under_the_nodes_profile(env, checkpoint,
                                                                 tmp_path) -> None:
    """A best-effort 640x480 camera at 30 Hz, started by seg.launch.py: it gets the node's
    transport profile, so its frames cross (on Fast DDS defaults most are lost: the camera
    issue's measurement and test_ros_input_loss.py)."""
    import json

    camera = ROOT / "test" / "fixtures" / "stream_camera.launch.py"
    run = Running(env, tmp_path / "launch.log", "launch", "slimseg_ros", "seg.launch.py",
                  f"model_path:={checkpoint}", "backend:=torch", "namespace:=camtest",
                  "image:=/camtest/camera", f"camera_launch:={camera}",
                  "camera_args:=topic:=/camtest/camera node:=/camtest/slimseg "
                  "labels:=/camtest/labels count:=150")
    try:
        assert run.wait_for('"answered"', DEADLINE + 60), run.text()[-3000:]
    finally:
        run.ctrl_c()
        run.wait()
    line = re.search(r'\{"matched_subscriptions".*\}', run.text())
    assert line, run.text()[-3000:]
    report = json.loads(line.group(0))
    assert len(report["sent"]) == 150
    assert len(report["answered"]) >= 0.95 * 150, run.text()[-3000:]
    assert "lost before the node" not in run.text()
