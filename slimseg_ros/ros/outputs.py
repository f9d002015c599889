"""The node's publishers, opened and closed together, and what goes out on them.

Stopping never races a publish: everything is published under one lock and only while open,
and closing takes that lock first. ``~/width`` and ``~/operating_point`` are latched, so they
are published once per change, whichever thread (a callback or the worker) sees it first.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String

from ..control import PointController
from ..sizes import format_size
from .conversions import blend, fill_image
from .frames import FrameOptions
from .operating_points import operating_point_json, pinned_words
from .qos import latched_qos, output_qos

__all__ = ["Outputs"]

MakePublisher = Callable[[type, str, Any], Any]
"""(message type, topic, QoS) -> publisher: ``create_publisher`` or its lifecycle variant."""


class Outputs:
    """The publishers, by name (``outputs["labels"]``), and a lock-safe way to publish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._publishers: dict[str, Any] = {}
        self._announce_lock = threading.Lock()
        self._announced: float | None = None
        self._announced_point: tuple[float, tuple[int, int]] | None = None

    def __getitem__(self, name: str) -> Any:
        return self._publishers[name]

    def open(self, make: MakePublisher) -> None:
        """Create every publisher; the latched topics publish again at the next change."""
        with self._lock:
            self._publishers = {
                "labels": make(Image, "labels", output_qos()),
                "labels_color": make(Image, "labels_color", output_qos()),
                "overlay": make(Image, "overlay", output_qos()),
                "width": make(Float32, "~/width", latched_qos()),
                "operating_point": make(String, "~/operating_point", latched_qos()),
                "agreement": make(Float32, "~/agreement", 10),
                "diagnostics": make(DiagnosticArray, "/diagnostics", 10),
            }
            self._open = True
            self._announced = None
            self._announced_point = None

    def stop(self) -> None:
        """Publish nothing more (a publish in progress finishes first)."""
        with self._lock:
            self._open = False

    def close(self, drop: Callable[[Any], None]) -> None:
        """Stop, then hand every publisher to ``drop`` (``destroy_publisher`` or its variant)."""
        with self._lock:
            self._open = False
            publishers, self._publishers = self._publishers, {}
        for publisher in publishers.values():
            drop(publisher)

    def publish(self, name: str, msg: Any) -> None:
        """Publish ``msg`` on ``name`` while open (dropped otherwise)."""
        with self._lock:
            if self._open:
                self._publishers[name].publish(msg)

    def publish_labels(self, header: Any, labels: np.ndarray, rgb: np.ndarray,
                       palette: np.ndarray, options: FrameOptions) -> bool:
        """``labels`` always; ``labels_color`` and ``overlay`` only where asked for and
        subscribed (the palette and the blend cost time). False: closed, nothing published."""
        with self._lock:
            if not self._open:
                return False
            pubs = self._publishers
            pubs["labels"].publish(fill_image(_image(header), labels, "mono8"))
            want_color = (options.publish_color
                          and pubs["labels_color"].get_subscription_count() > 0)
            want_overlay = (options.publish_overlay
                            and pubs["overlay"].get_subscription_count() > 0)
            if want_color or want_overlay:
                colored = palette[labels]
                if want_color:
                    pubs["labels_color"].publish(fill_image(_image(header), colored, "rgb8"))
                if want_overlay:
                    mixed = blend(rgb, colored, options.overlay_alpha)
                    pubs["overlay"].publish(fill_image(_image(header), mixed, "rgb8"))
        return True

    def announce(self, width: float, reason: str, size: tuple[int, int] | None,
                 ctrl: PointController | None, log: Callable[[str], None] | None) -> None:
        """Publish ``~/width`` and ``~/operating_point`` where they changed, and ``log`` the
        change with its reason (None: say nothing, the node is closing). ``size`` None: the
        controller's; the point is published only once a controller exists."""
        size = tuple(size) if size is not None else (ctrl.size if ctrl is not None else None)
        with self._announce_lock:
            width_changed = self._announced is None or not math.isclose(self._announced, width)
            point = (float(width), size) if size is not None else None
            point_changed = point is not None and point != self._announced_point
            if not width_changed and not point_changed:
                return
            self._announced = width
            if point is not None:
                self._announced_point = point
            with self._lock:
                if self._open:
                    if width_changed:
                        self._publishers["width"].publish(Float32(data=float(width)))
                    if point_changed and ctrl is not None:
                        status = ctrl.status(time.monotonic())
                        self._publishers["operating_point"].publish(String(
                            data=operating_point_json(width, size, status.adaptive,
                                                      pinned_words(status), reason)))
        if log is None:
            return
        if width_changed and (ctrl is None or len(ctrl.sizes) == 1):
            log(f"width {width:g}: {reason}")
        else:
            log(f"operating point {width:g}@{format_size(size)}: {reason}")


def _image(header: Any) -> Image:
    out = Image()
    out.header = header
    return out
