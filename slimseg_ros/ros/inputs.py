"""The camera subscription: its QoS, re-subscribing as publishers come and go, frames lost.

The node owns one :class:`ImageInput`. Once a second it asks the graph who publishes on the
input topic and lets :class:`~.qos.InputQosChooser` pick the reliability (:mod:`.qos` says why
that matters); it re-subscribes only when that choice, the topic or the transport changes.
Every message's publisher GID and sequence number feed the chooser (who still delivers) and
:class:`~.input_loss.InputLossMeter` (what was lost on the way) before the node gets the frame.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from .frames import Frame
from .input_loss import InputLoss, InputLossMeter, loss_warning, profile_hint
from .qos import InputQosChooser, input_qos, reliability_name

__all__ = ["ImageInput", "QOS_CHECK_PERIOD_S"]

QOS_CHECK_PERIOD_S = 1.0


class ImageInput:
    """The image subscription of ``node`` (see the module docstring).

    Args:
        node: the node that subscribes (its graph, timers and logger are used).
        on_frame: called in the subscription callback with each frame, after the
            bookkeeping.
        report: called with what failed and the exception when a graph check fails (it must
            not stop the executor).
    """

    def __init__(self, node: Node, on_frame: Callable[[Frame], None],
                 report: Callable[[str, Exception], None]) -> None:
        self._node = node
        self._on_frame = on_frame
        self._report = report
        self.transport = "raw"
        """``raw`` (``image``) or ``compressed`` (``image/compressed``)."""
        self.reliability_mode = "auto"
        self.reason = "not subscribed"
        """The reliability in use and why (``/diagnostics`` ``input_reliability``)."""
        self._sub: Any = None
        self._key: tuple[str, bool, Any] | None = None  # topic, compressed, reliability
        self._subscribed_at: float | None = None
        self._timer: Any = None
        self._heard: dict[bytes, float] = {}  # publisher GID -> its last frame's arrival
        self._chooser = InputQosChooser()
        self._loss = InputLossMeter()
        self._profile_hint = profile_hint()

    def topic(self) -> str:
        """The fully qualified topic images are read from."""
        resolve = self._node.resolve_topic_name
        if self.transport == "raw":
            return resolve("image")
        # Like image_transport: remapping `image` moves `image/compressed` with it, unless
        # `image/compressed` has its own remapping.
        explicit = resolve("image/compressed")
        if explicit != resolve("image/compressed", only_expand=True):
            return explicit
        return resolve("image").rstrip("/") + "/compressed"

    def open(self, transport: str, reliability_mode: str) -> None:
        """Subscribe, and re-check the publishers every :data:`QOS_CHECK_PERIOD_S`."""
        self.transport, self.reliability_mode = transport, reliability_mode
        self.update(force=True)
        self._timer = self._node.create_timer(QOS_CHECK_PERIOD_S, self.update)

    def close(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
        self._timer = self._sub = None
        self._key = None
        self.reason = "not subscribed"

    def set_mode(self, transport: str, reliability_mode: str) -> None:
        """New ``input_transport``/``input_reliability``: re-subscribe at once if subscribed."""
        if (transport, reliability_mode) == (self.transport, self.reliability_mode):
            return
        self.transport, self.reliability_mode = transport, reliability_mode
        if self._sub is not None:
            self.update(force=True)

    def update(self, force: bool = False) -> None:
        """Re-subscribe if the QoS choice, topic or transport changed (always when ``force``);
        a failure is reported, never raised (the timer calls this)."""
        try:
            self._update(force)
        except Exception as exc:  # noqa: BLE001 - a graph check must not stop the executor
            self._report("_update_input_subscription", exc)

    def _update(self, force: bool) -> None:
        topic = self.topic()
        compressed = self.transport == "compressed"
        try:
            infos = self._node.get_publishers_info_by_topic(topic)
        except Exception:  # noqa: BLE001 - a graph query must not stop the timer
            infos = []
        now = time.monotonic()
        current = self._key[2] if self._key and self._key[0] == topic else None
        publishers = dict((bytes(i.endpoint_gid), i.qos_profile.reliability) for i in infos)
        for gone in set(self._heard) - set(publishers):
            self._loss.forget_publisher(gone)
        self._heard = {k: t for k, t in self._heard.items() if k in publishers}
        reliability, why = self._chooser.choose(self.reliability_mode, list(publishers.items()),
                                                now, current, self._subscribed_at,
                                                dict(self._heard))
        key = (topic, compressed, reliability)
        reason = f"{reliability_name(reliability)} ({why})"
        if not force and key == self._key:
            self.reason = reason  # same QoS, but the publishers may have changed
            return
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
        msg_type = CompressedImage if compressed else Image
        self._sub, lost_event = self._subscribe(msg_type, topic, input_qos(reliability))
        self._loss.new_subscription(lost_event)
        self._key = key
        self._subscribed_at = now
        self.reason = reason
        self._node.get_logger().info(
            f"subscribed to {topic} ({msg_type.__name__}), {self.reason}")

    def _subscribe(self, msg_type: type, topic: str, qos: Any) -> tuple[Any, bool]:
        """The subscription, with the DDS message-lost event where the RMW offers it (frames
        lost in transport never reach the callback: docs/transport.md)."""
        events = SubscriptionEventCallbacks(
            message_lost=lambda info: self._loss.on_lost_event(info.total_count_change))
        try:
            return self._node.create_subscription(msg_type, topic, self._on_message, qos,
                                                  event_callbacks=events), True
        except UnsupportedEventTypeError:
            return self._node.create_subscription(msg_type, topic, self._on_message, qos), False

    def _on_message(self, msg: Image | CompressedImage, info: Any) -> None:
        # Two parameters: rclpy passes the message info (publisher GID, sequence number).
        now = time.monotonic()
        gid = info.get("publisher_gid") if info else None
        publisher = bytes(gid["data"]) if gid else None
        if publisher is not None:  # which camera delivers (input QoS choice)
            self._heard[publisher] = now
        self._loss.on_message(publisher, info.get("publication_sequence_number") if info else None)
        self._on_frame(Frame(msg, isinstance(msg, CompressedImage), now))

    def loss(self, now: float) -> InputLoss:
        """Frames lost before the callback: totals and the recent window (ask once a status)."""
        return self._loss.summary(now)

    def loss_warning(self, loss: InputLoss) -> str | None:
        """The warning while that loss is large, naming the fix (None otherwise)."""
        return loss_warning(loss, self._profile_hint)
