"""Shared test set-up.

Tests run on 2-core machines, often beside other work: one torch thread per test process and a
passive OpenMP wait policy keep them from spinning against each other. Every DDS participant of
a test run (this process and the nodes it starts) joins one random ROS domain in 1..100, so
parallel runs on one machine do not hear each other (set SLIMSEG_TEST_DOMAIN_ID to choose it).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("SLIMSEG_TEST_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ["ROS_DOMAIN_ID"] = os.environ["SLIMSEG_TEST_DOMAIN_ID"]

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

CAMVID_ROOT = os.environ.get(
    "SLIMSEG_CAMVID",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "camvid"),
)


@pytest.fixture(scope="session")
def camvid_root() -> str:
    """The development copy of CamVid; tests that need it skip when it is absent."""
    if not os.path.isdir(os.path.join(CAMVID_ROOT, "val")):
        pytest.skip(f"CamVid not found at {CAMVID_ROOT} (set SLIMSEG_CAMVID)")
    return CAMVID_ROOT


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory):
    """``make_checkpoint(config=None, input_size=(64, 64), seed=0)`` -> a random model's file.

    One helper for every test that needs "some checkpoint" (default: the shipped architecture,
    11 classes, random weights); files are cached per arguments for the session.
    """
    from slimseg_ros.model.checkpoint import save_random_checkpoint

    made: dict = {}
    root = tmp_path_factory.mktemp("checkpoints")

    def make(config=None, input_size=(64, 64), seed=0):
        key = (config, tuple(input_size), seed)
        if key not in made:
            made[key] = save_random_checkpoint(root / f"random_{len(made)}.safetensors", config,
                                               input_size, seed)
        return made[key]

    return make


@pytest.fixture(scope="session")
def camera_frame():
    """``camera_frame((w, h), stamp, encoding="rgb8", frame_id="camera")`` -> a
    ``sensor_msgs/Image`` of random pixels (seeded by the stamp) with that header."""
    pytest.importorskip("rclpy", reason="the ROS 2 client library is not installed")
    import numpy as np

    from slimseg_ros.ros.conversions import make_header, make_image

    def frame(size, stamp, encoding="rgb8", frame_id="camera"):
        w, h = size
        rgb = np.random.default_rng(stamp % 997).integers(0, 256, (h, w, 3), dtype=np.uint8)
        return make_image(rgb, encoding, make_header(stamp, frame_id))

    return frame


@pytest.fixture(scope="session")
def camera_process():
    """``camera_process(*args, env=None)`` -> the report of a camera in its own process
    (``test/dds_camera.py``: frames one at a time, each waited for): for publisher-side set-ups
    such as a Fast DDS profile, which a process reads once."""
    script = Path(__file__).with_name("dds_camera.py")

    def run(*args: str, env: dict | None = None, timeout: float = 240.0) -> dict:
        done = subprocess.run([sys.executable, str(script), *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


class HeldBuild:
    """An engine cache whose lock this test holds: a node building ONNX or TensorRT engines into
    it exports the first one and then waits to store it, so its build is in progress for as long
    as the test needs (no sleeps, no races)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    @staticmethod
    def assert_abandoned(code: int | None, log: str) -> None:
        """The node stopped on a signal mid-build: status 0, the build not waited for."""
        assert code == 0, log[-2000:]
        assert "not waiting for the engine build in progress" in log
        assert "Traceback" not in log and "Failed to publish" not in log

    def sigterm(self, node) -> None:
        """SIGTERM a :class:`~slimseg_ros.ros.client.NodeProcess` mid-build; check the stop."""
        import signal

        node.send(signal.SIGTERM)
        try:
            code = node.wait(60)
        finally:
            node.stop()
        self.assert_abandoned(code, node.log_text())


@pytest.fixture
def held_build(tmp_path):
    import fcntl

    cache = tmp_path / "held_cache"
    cache.mkdir()
    with open(cache / ".manifest.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield HeldBuild(cache)
