"""Helpers that drive a node from outside: make images, publish them, collect answers.

Used by the integration tests and by ``bench_node``. Nothing here sleeps blindly: every wait
has a deadline and returns as soon as what it waits for has happened.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


__all__ = [
    "isolate_ros_domain", "make_test_checkpoint", "make_header", "make_image",
    "make_compressed", "stamp_ns", "Collector", "wait_until",
]


def isolate_ros_domain() -> int:
    """Give this process (and its children) a random ROS_DOMAIN_ID in 1..100, once.

    Parallel test runs on one machine then do not hear each other. Call before rclpy.init.
    """
    key = "SLIMSEG_TEST_DOMAIN_ID"
    if key not in os.environ:
        os.environ[key] = str(random.SystemRandom().randint(1, 100))
    os.environ["ROS_DOMAIN_ID"] = os.environ[key]
    return int(os.environ[key])


def make_test_checkpoint(path: str | os.PathLike[str], input_size: tuple[int, int] = (64, 96),
                         num_classes: int = 5, seed: int = 0) -> Path:
    """A small randomly initialised SlimSeg checkpoint (the trained model is not needed)."""
    import torch

    from ..model.checkpoint import random_meta, save_checkpoint
    from ..model.config import ModelConfig
    from ..model.slimseg import SlimSegNet

    torch.manual_seed(seed)
    config = ModelConfig(num_classes=num_classes)
    return save_checkpoint(path, SlimSegNet(config).eval(), random_meta(config, input_size))


from .conversions import make_compressed, make_header, make_image  # noqa: E402
from ..data.stamps import stamp_ns  # noqa: E402


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes
    (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Collector:
    """Subscribes to a topic and keeps what arrives, with the arrival time; waits on it."""

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile | int = 10,
                 keep: int = 1000) -> None:
        self._cond = threading.Condition()
        self.messages: list[tuple[float, Any]] = []
        self._keep = keep
        self.subscription = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        now = time.monotonic()
        with self._cond:
            self.messages.append((now, msg))
            if len(self.messages) > self._keep:
                del self.messages[: len(self.messages) - self._keep]
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        with self._cond:
            return [m for _, m in self.messages]

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def wait_for(self, match: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first kept message for which ``match`` is true, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, msg in self.messages:
                    if match(msg):
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wait_for_stamp(self, stamp: int, timeout: float) -> Any | None:
        """The message whose header stamp is ``stamp`` ns."""
        return self.wait_for(lambda m: stamp_ns(m.header) == stamp, timeout)

    def arrival_of(self, stamps: Iterable[int]) -> dict[int, float]:
        """Arrival time of each message whose stamp is in ``stamps``."""
        wanted = set(stamps)
        with self._cond:
            return {stamp_ns(m.header): t for t, m in self.messages
                    if stamp_ns(m.header) in wanted}
