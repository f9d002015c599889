"""The DDS side of a bag replay: publish recorded messages on schedule, record the node's answers.

:mod:`slimseg_ros.eval.replay_plan` plans the replay (which serialised message goes out when,
which parameter changes when) and :mod:`slimseg_ros.eval.replay_score` scores the result; this
module only talks ROS 2, through a :class:`~slimseg_ros.ros.client.Probe`. It publishes the CDR
bytes from the bag unchanged (as ``ros2 bag play`` does), sets parameters through the node's
``set_parameters`` service (what ``ros2 param set`` calls), and records with one monotonic
clock: when every frame went out, when its labels came back (matched by header stamp),
``~/width`` changes and the node's status. What it returns is plain data
(:class:`~slimseg_ros.eval.replay_score.ReplayRecording`).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import zlib
from typing import Any, Callable, Iterable

from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import String

from ...eval.replay_score import ReceivedLabels, ReplayRecording
from ..qos import latched_qos
from .probe import Probe

__all__ = ["MESSAGE_CLASSES", "ReplayClient"]

MESSAGE_CLASSES = {
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "sensor_msgs/msg/BatteryState": BatteryState,
}
_STATUS_WAIT_S = 2.5  # the node publishes its status at 1 Hz


class ReplayClient:
    """Publishes a planned replay to a segmentation node and records its answers.

    Args:
        node_name: fully qualified name of the node (``/slimseg``).
        publish_topics: topic -> message type of everything the replay publishes.
        image_topic: the topic whose messages are frames (their stamps are matched).
        labels_topic: where the node publishes its label images.
        domain_id: ROS domain to join (None: ``ROS_DOMAIN_ID`` or 0).
    """

    def __init__(self, *, node_name: str, publish_topics: dict[str, str], image_topic: str,
                 labels_topic: str, domain_id: int | None = None) -> None:
        unknown = {t: m for t, m in publish_topics.items() if m not in MESSAGE_CLASSES}
        if unknown:
            raise ValueError(f"cannot replay {unknown}; supported types: "
                             f"{', '.join(MESSAGE_CLASSES)}")
        self.image_topic = image_topic
        self.labels_topic = labels_topic
        # Labels are collected by a subscription made here, before the node exists, so discovery
        # runs while it loads; reliable, because label images of 640x480 and up are lost over
        # best effort between processes.
        self.probe = Probe(node_name, domain_id=domain_id, labels_topic=None,
                           probe_name="slimseg_replay")
        self.node_name = self.probe.node_fqn
        # The operating point (width x input size) of each answer, like its width: the node
        # publishes a change before the first labels made at the new point.
        self._points = self.probe.collect(String, self.node_name + "/operating_point",
                                          latched_qos())
        self._labels = self._collect_labels(ReliabilityPolicy.RELIABLE)
        self._labels_ready = False
        self._clock0 = time.monotonic()
        self._params: list[dict[str, Any]] = []
        self._notes: list[str] = []
        # Reliable like `ros2 bag play` of a reliable recording: frames of 500 KB and more are
        # lost over best effort between processes with default Fast DDS settings.
        self._publishers = {topic: self.probe.publisher(MESSAGE_CLASSES[msgtype], topic, 10)
                            for topic, msgtype in publish_topics.items()}

    def _collect_labels(self, reliability: ReliabilityPolicy) -> Any:
        return self.probe.collect(Image, self.labels_topic,
                                  QoSProfile(depth=100, reliability=reliability), keep=None,
                                  transform=self._pack)

    def _pack(self, msg: Image) -> ReceivedLabels:
        # level 1, the fastest: label maps are long runs of a few values, so even the cheapest
        # level makes them small and a long replay's answers fit in memory; t is set in run()
        return ReceivedLabels(0, 0.0, self.probe.current_width(), msg.height, msg.width,
                              msg.encoding, msg.step, zlib.compress(memoryview(msg.data), 1),
                              self._current_point())

    def _current_point(self) -> str | None:
        msg = self._points.newest()
        if msg is None:
            return None
        try:
            return str(json.loads(msg.data)["point"])
        except (ValueError, KeyError, TypeError):
            return None

    # -- set-up --------------------------------------------------------------------------------

    def wait_for_node(self, timeout_s: float = 120.0,
                      check_alive: Callable[[], str | None] | None = None) -> None:
        """Wait until the node subscribes to the images, answers ``~/width``, has a labels
        publisher and a parameter service; then match the labels subscription to it.

        Raises:
            TimeoutError: not ready within ``timeout_s`` (the message says what is missing).
            RuntimeError: ``check_alive`` returned a reason (e.g. the node process died), or
                other cameras or nodes on these topics would mix with the replay.
        """
        deadline = time.monotonic() + timeout_s
        image_pub = self._publishers[self.image_topic]
        node = self.probe.node
        missing = ""
        while time.monotonic() < deadline:
            if check_alive is not None and (problem := check_alive()):
                raise RuntimeError(problem)
            labels_pubs = node.get_publishers_info_by_topic(self.labels_topic)
            if image_pub.get_subscription_count() < 1:
                missing = f"no subscription on {self.image_topic}"
            elif self.probe.current_width() is None:
                missing = f"no message on {self.node_name}/width"
            elif not labels_pubs:
                missing = f"no publisher on {self.labels_topic}"
            elif not self.probe.parameter_service_ready():
                missing = f"service {self.node_name}/set_parameters not available"
            else:
                self.check_alone(labels_pubs)
                self._match_labels(labels_pubs, max(0.5, deadline - time.monotonic()))
                self._wait_for_reliable_input(min(5.0, max(0.0, deadline - time.monotonic())))
                return
            time.sleep(0.05)
        raise TimeoutError(f"node {self.node_name} not ready after {timeout_s:.0f} s: {missing}")

    def check_alone(self, labels_publishers: list[Any]) -> None:
        """Refuse to run beside another camera or segmentation node on the same topics: their
        frames and labels would mix with ours (two replays of one bag even share stamps)."""
        cameras = self.probe.node.count_publishers(self.image_topic) - 1  # minus our own
        nodes = {(p.node_namespace.rstrip("/") + "/" + p.node_name) for p in labels_publishers}
        if cameras > 0 or len(nodes) > 1:
            what = (f"{cameras} other publisher(s) on {self.image_topic}" if cameras > 0 else
                    f"{len(nodes)} nodes publishing {self.labels_topic} "
                    f"({', '.join(sorted(nodes))})")
            raise RuntimeError(f"{what} in this ROS domain would mix with the replay; stop them "
                               f"or use a free domain (--domain-id)")

    def _match_labels(self, publishers: list[Any], timeout_s: float) -> None:
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                       for p in publishers)
        if not reliable:  # a best-effort publisher never matches a reliable subscription
            self.probe.node.destroy_subscription(self._labels.subscription)
            self._labels = self._collect_labels(ReliabilityPolicy.BEST_EFFORT)
        # the graph lists the publisher before DDS has matched it with our subscription
        count = getattr(self._labels.subscription, "get_publisher_count", None)
        deadline = time.monotonic() + timeout_s
        if count is None:
            time.sleep(min(1.0, timeout_s))  # rclpy without the count (Humble): give it time
        else:
            while count() < len(publishers) and time.monotonic() < deadline:
                time.sleep(0.02)
            if count() == 0:
                raise TimeoutError(f"our subscription to {self.labels_topic} matched none of "
                                   f"its {len(publishers)} publisher(s) (incompatible QoS?)")
        matched = "?" if count is None else str(count())
        kind = "reliable" if reliable else "best_effort"
        self._notes.append(f"labels subscription {kind}, matched {matched} of "
                           f"{len(publishers)} publisher(s)")
        self._labels_ready = True

    def _wait_for_reliable_input(self, timeout_s: float) -> None:
        # The node's input_reliability 'auto' re-subscribes once it sees our reliable publisher.
        deadline = time.monotonic() + timeout_s
        while True:
            subs = self.probe.node.get_subscriptions_info_by_topic(self.image_topic)
            kinds = sorted({s.qos_profile.reliability.name.lower() for s in subs})
            if kinds == ["reliable"] or time.monotonic() >= deadline:
                self._notes.append(
                    f"image subscription(s) on {self.image_topic}: {', '.join(kinds)}")
                return
            time.sleep(0.05)

    def get_parameters(self, names: list[str], timeout_s: float = 5.0) -> dict[str, Any]:
        """The node's values of ``names`` (what ``ros2 param get`` shows); unset ones omitted."""
        return self.probe.get_parameters(names, timeout_s)

    # -- the replay ------------------------------------------------------------------------------

    def set_parameter(self, name: str, value: Any, wait_s: float = 0.0) -> dict[str, Any]:
        """Request a parameter change (like ``ros2 param set``).

        The returned record (also kept for the recording) is filled in when the node answers;
        with ``wait_s`` > 0 this waits up to that long for the answer.
        """
        entry: dict[str, Any] = {"t": time.monotonic(), "name": name, "value": value,
                                 "successful": None, "reason": "", "t_done": None}
        answered = threading.Event()

        def done(results: list[tuple[bool, str]] | None) -> None:
            entry["t_done"] = time.monotonic()
            if results:
                entry["successful"], entry["reason"] = results[0]
            answered.set()

        self._params.append(entry)
        self.probe.set_parameters_async({name: value}, done)
        if wait_s > 0:
            answered.wait(wait_s)
        return entry

    def run(self, events: Iterable[tuple[float, str, tuple]], *,
            on_frame: Callable[[], None] | None = None, settle_s: float = 2.0,
            expected_frames: int | None = None) -> ReplayRecording:
        """Carry out ``events`` on schedule, wait for the last answers; what happened.

        Args:
            events: ``(t_seconds, kind, payload)`` in time order; kinds: ``publish`` with
                ``(topic, cdr_bytes, frame_stamp_ns_or_None)``, ``param`` with ``(name, value)``.
            on_frame: called after each frame is published (progress bars).
            settle_s: how long to wait after the last event for outstanding labels.
            expected_frames: stop waiting early once this many labels arrived.
        """
        if not self._labels_ready:
            raise RuntimeError("call wait_for_node() first")
        sent: list[tuple[int, float]] = []
        event_times: list[float] = []
        start = time.monotonic()
        self._clock0 = start  # the replay clock starts with the first event
        for t_event, kind, payload in events:
            delay = start + t_event - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if kind == "publish":
                topic, data, stamp = payload
                # bytes: published as the serialised message it is (rclpy's publish_raw)
                self._publishers[topic].publish(bytes(data))
                if stamp is not None:
                    sent.append((int(stamp), time.monotonic()))
                    if on_frame is not None:
                        on_frame()
            elif kind == "param":
                self.set_parameter(*payload)
            else:
                raise ValueError(f"unknown replay event {kind!r}")
            event_times.append(time.monotonic())
        deadline = time.monotonic() + settle_s
        wanted = len(sent) if expected_frames is None else expected_frames
        while time.monotonic() < deadline and len(self._labels.snapshot()) < wanted:
            time.sleep(0.02)
        self._wait_for_status_after_last_switch()
        return self._recording(sent, event_times)

    def _wait_for_status_after_last_switch(self) -> None:
        """The reason of a switch comes from the node's next status (1 Hz): wait for it."""
        widths = self.probe.width.timed()
        if not widths:
            return
        last = widths[-1][0]
        deadline = time.monotonic() + _STATUS_WAIT_S
        while time.monotonic() < deadline and not any(
                t > last for t, _, _ in self.probe.statuses()):
            time.sleep(0.05)

    def _recording(self, sent: list[tuple[int, float]], event_times: list[float]
                   ) -> ReplayRecording:
        """Everything on the replay clock; what came before the first event counts as at 0."""
        t0 = self._clock0

        def clock(t: float | None) -> float | None:
            return None if t is None else max(0.0, t - t0)

        def from_start(timed: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
            before = [item for t, item in timed if t < t0][-1:]  # the latched state at the start
            return [(0.0, item) for item in before] + [(t - t0, item) for t, item in timed
                                                       if t >= t0]

        widths = [(t, round(float(msg.data), 6)) for t, msg in self.probe.width.timed()]
        statuses = [(t, values) for t, _, values in self.probe.statuses()]
        params = [dict(entry, t=clock(entry["t"]), t_done=clock(entry["t_done"]))
                  for entry in self._params]
        labels = [dataclasses.replace(item, stamp_ns=stamp, t=t - t0)
                  for t, stamp, item in self._labels.stamped()]
        return ReplayRecording(
            sent=[(stamp, t - t0) for stamp, t in sent], event_times=[t - t0 for t in event_times],
            labels=labels, widths=from_start(widths), diagnostics=from_start(statuses),
            params=params, notes=list(self._notes))

    def close(self) -> None:
        """Leave the ROS graph (idempotent)."""
        self.probe.close()

    def __enter__(self) -> ReplayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
