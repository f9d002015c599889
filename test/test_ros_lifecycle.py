"""The managed node (``slimseg_lifecycle_node``) as its own process, driven through its lifecycle
services over DDS (what ``ros2 lifecycle set/get`` and Nav2's lifecycle manager call).

One process goes through a whole life: unconfigured (parameters answer, nothing published); a
configure that fails on a bad model (back to unconfigured, one ERROR line); configure ->
inactive (no labels for frames sent); activate (labels); deactivate (none again, engines kept);
cleanup; another model while unconfigured; configure -> activate serves that model's widths;
shutdown ends the process with status 0. Another process shows that parameter calls are answered
while ``configure`` builds engines, and that SIGTERM then does not wait for the build.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")
pytest.importorskip("lifecycle_msgs", reason="ros-lifecycle-msgs is not installed")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from slimseg_ros.model.config import ModelConfig  # noqa: E402
from slimseg_ros.ros.client import (  # noqa: E402
    LIFECYCLE_NODE, NodeProcess, Probe, node_command, wait_until)

pytestmark = pytest.mark.dds

DEADLINE = 60.0
QUIET_S = 3.0
"""How long frames go unanswered before "no labels while inactive" is concluded."""


def node_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


class Camera:
    """Frames on ``topic``, one at a time, each with a new stamp."""

    def __init__(self, probe: Probe, topic: str, camera_frame) -> None:
        self.probe, self.frame, self.stamp = probe, camera_frame, 7_000_000_000
        self.pub = probe.publisher(Image, topic,
                                   QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

    def answered(self, timeout: float = DEADLINE) -> Image | None:
        """Publish frames until one is answered (None if none is within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.stamp += 1
            self.pub.publish(self.frame((64, 48), self.stamp))
            got = self.probe.labels.wait_for_stamp(self.stamp, 0.5)
            if got is not None:
                return got
        return None


def test_a_whole_life_through_the_lifecycle_services(tmp_path: Path, make_checkpoint,
                                                      camera_frame) -> None:
    first = make_checkpoint(input_size=(64, 96))
    second = make_checkpoint(ModelConfig(widths=(0.5, 1.0)), input_size=(64, 96), seed=1)
    cmd = node_command(executable=LIFECYCLE_NODE,
                       remaps=["__node:=slimseg_managed", "image:=/managed/image",
                               "labels:=/managed/labels"],
                       params=[f"model_path:={tmp_path / 'missing.safetensors'}",
                               "backend:=torch", "target_fps:=0.1", "overrun_frames:=1000"])
    node = NodeProcess(cmd, tmp_path / "node.log", node_env())
    try:
        with Probe("/slimseg_managed", labels_topic="/managed/labels", labels_qos=10) as probe:
            camera = Camera(probe, "/managed/image", camera_frame)
            assert wait_until(lambda: probe.parameter_service_ready() or node.problem(),
                              DEADLINE * 2)
            assert probe.lifecycle_state() == "unconfigured"
            assert probe.get_parameters(["backend"]) == {"backend": "torch"}

            # a model that does not load: back to unconfigured, with one clear line
            assert probe.change_state("configure") is False
            assert probe.lifecycle_state() == "unconfigured"
            errors = [line for line in node.log_text().splitlines() if "ERROR" in line]
            assert len(errors) == 1 and "configure failed: cannot load the model" in errors[0]
            assert "missing.safetensors: no such checkpoint file" in errors[0]

            (ok, reason), = probe.set_parameters({"model_path": str(first)})
            assert ok, reason
            assert probe.change_state("configure") is True
            assert probe.lifecycle_state() == "inactive"
            assert probe.get_parameters(["widths"]) == {"widths": [0.25, 0.5, 0.75, 1.0]}
            (ok, reason), = probe.set_parameters({"model_path": str(second)})
            assert not ok and "only while the node is unconfigured" in reason
            assert camera.answered(QUIET_S) is None  # inactive: no labels

            assert probe.change_state("activate") is True
            assert camera.answered() is not None
            assert probe.wait_started(DEADLINE) in (0.25, 0.5, 0.75, 1.0)  # ~/width

            assert probe.change_state("deactivate") is True
            assert probe.lifecycle_state() == "inactive"
            probe.labels.clear()
            assert camera.answered(QUIET_S) is None
            assert probe.change_state("activate") is True  # engines stayed warm
            assert camera.answered() is not None

            # a model swap without a restart
            assert probe.change_state("deactivate") is True
            assert probe.change_state("cleanup") is True
            assert probe.lifecycle_state() == "unconfigured"
            (ok, reason), = probe.set_parameters({"model_path": str(second)})
            assert ok, reason
            assert probe.change_state("configure") is True
            assert probe.get_parameters(["widths"]) == {"widths": [0.5, 1.0]}
            (ok, reason), = probe.set_parameters({"width": 0.25})
            assert not ok and "(0.5, 1)" in reason
            assert probe.change_state("activate") is True
            probe.labels.clear()
            assert camera.answered() is not None
            (ok, reason), = probe.set_parameters({"width": 0.5})
            assert ok, reason
            assert probe.wait_width(0.5, DEADLINE)

            assert probe.change_state("shutdown") is True
            assert node.wait(DEADLINE) == 0
    finally:
        node.stop()
    log = node.log_text()
    assert "Traceback" not in log and "Failed to publish" not in log


def test_configure_answers_parameters_while_building_and_sigterm_does_not_wait(
        tmp_path: Path, make_checkpoint, held_build) -> None:
    cmd = node_command(executable=LIFECYCLE_NODE, remaps=["__node:=slimseg_configuring"],
                       params=[f"model_path:={make_checkpoint(input_size=(64, 96))}",
                               "backend:=onnxruntime", f"engine_cache_dir:={held_build.cache}"])
    node = NodeProcess(cmd, tmp_path / "node.log", node_env())
    try:
        with Probe("/slimseg_configuring", labels_topic=None) as probe:
            assert wait_until(lambda: probe.parameter_service_ready() or node.problem(),
                              DEADLINE * 2)
            assert probe.lifecycle_state() == "unconfigured"
            answers: list = []
            probe.change_state_async("configure", answers.append)
            # widths come from the checkpoint's header, before any engine is built
            assert wait_until(lambda: probe.get_parameters(["widths"], DEADLINE).get(
                "widths") == [0.25, 0.5, 0.75, 1.0], DEADLINE)
            (ok, reason), = probe.set_parameters({"overlay_alpha": 0.3}, DEADLINE)
            assert ok, reason
            assert not answers  # configure is still building (and cannot finish)
            held_build.sigterm(node)
    finally:
        node.stop()
