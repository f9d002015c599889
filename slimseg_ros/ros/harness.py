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

from .conversions import fill_image

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


def make_header(stamp_ns: int, frame_id: str = "camera") -> Header:
    """A header with the given stamp (nanoseconds) and frame id."""
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                  frame_id=frame_id)


def stamp_ns(header: Header) -> int:
    """A header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def make_image(rgb: np.ndarray, encoding: str, header: Header) -> Image:
    """An ``Image`` holding ``rgb`` (HxWx3 uint8) in ``encoding`` (rgb8, bgr8, rgba8, bgra8,
    mono8, mono16, yuv422, yuv422_yuy2)."""
    msg = Image()
    msg.header = header
    if encoding == "rgb8":
        return fill_image(msg, rgb, "rgb8")
    if encoding == "bgr8":
        return fill_image(msg, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr8")
    if encoding == "rgba8":
        return fill_image(msg, cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA), "rgba8")
    if encoding == "bgra8":
        return fill_image(msg, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA), "bgra8")
    if encoding == "mono8":
        return fill_image(msg, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), "mono8")
    h, w = rgb.shape[:2]
    msg.height, msg.width, msg.is_bigendian = h, w, 0
    if encoding == "mono16":
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype("<u2") * 257
        msg.encoding, msg.step, msg.data = "mono16", w * 2, gray.tobytes()
        return msg
    if encoding in ("yuv422", "yuv422_yuy2"):
        # BT.601 limited range, chroma averaged over each horizontal pixel pair.
        r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        y = 16 + luma * 219 / 255
        u = (128 + 0.564 * (b - luma) * 224 / 255).reshape(h, w // 2, 2).mean(axis=2)
        v = (128 + 0.713 * (r - luma) * 224 / 255).reshape(h, w // 2, 2).mean(axis=2)
        packed = np.empty((h, w // 2, 4), dtype=np.float32)
        if encoding == "yuv422":  # UYVY
            packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = (
                u, y[:, 0::2], v, y[:, 1::2])
        else:  # YUYV
            packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = (
                y[:, 0::2], u, y[:, 1::2], v)
        msg.encoding, msg.step = encoding, w * 2
        msg.data = np.clip(np.rint(packed), 0, 255).astype(np.uint8).tobytes()
        return msg
    raise ValueError(f"make_image cannot write encoding {encoding!r}")


def make_compressed(rgb: np.ndarray, fmt: str, header: Header) -> CompressedImage:
    """A ``CompressedImage`` of ``rgb`` as ``jpeg`` or ``png``."""
    ok, buf = cv2.imencode("." + fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV cannot encode {fmt!r}")
    return CompressedImage(header=header, format=fmt, data=buf.tobytes())


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
