"""The DDS side of a bag replay: publish recorded messages on schedule, collect the node's output.

:mod:`slimseg_ros.eval.replay` plans the replay (which serialised message goes out when, which
parameter changes when) and scores the result; this module only talks ROS 2. It publishes the
CDR bytes from the bag unchanged (as ``ros2 bag play`` does), calls the node's
``set_parameters`` service (what ``ros2 param set`` calls), and records with one monotonic clock:
when every frame went out, when its labels came back (matched by header stamp), ``~/width``
changes, and the node's ``/diagnostics``. Everything it returns is plain Python data.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as _ParameterMsg
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32

__all__ = ["ReplayClient", "ReplayRecording", "ReceivedLabels", "MESSAGE_CLASSES",
           "typed_node_params"]

MESSAGE_CLASSES = {
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "sensor_msgs/msg/BatteryState": BatteryState,
}


@dataclass
class ReceivedLabels:
    """One label image from the node (pixels zlib-compressed to bound memory)."""

    stamp_ns: int
    t: float
    """Arrival, seconds on the replay clock."""
    width: float | None
    """The last ``~/width`` value received before it (None if none yet)."""
    height_px: int
    width_px: int
    encoding: str
    step: int
    data_z: bytes


@dataclass
class ReplayRecording:
    """What happened, on one clock (seconds since the first scheduled event)."""

    sent: list[tuple[int, float]] = field(default_factory=list)
    """(image header stamp ns, time published) per image."""
    event_times: list[float] = field(default_factory=list)
    """Time each event was carried out, in event order."""
    labels: list[ReceivedLabels] = field(default_factory=list)
    widths: list[tuple[float, float]] = field(default_factory=list)
    """(time, width) of every ``~/width`` message, the latched one first."""
    diagnostics: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    """(time, key -> value) of the node's status messages."""
    params: list[dict[str, Any]] = field(default_factory=list)
    """Parameter changes: time requested, name, value, successful, reason, time answered."""
    notes: list[str] = field(default_factory=list)


def typed_node_params(params: dict[str, Any]) -> dict[str, Any]:
    """Start-up parameters with numbers in the types the node declares (``1`` -> ``1.0`` for a
    double), so a parameter file written from the command line does not fail the node's start.
    Unknown names pass unchanged (the node reports them)."""
    from .params import NODE_PARAMETERS

    declared = {s.name: s.default for s in NODE_PARAMETERS}
    out = {}
    for name, value in params.items():
        default = declared.get(name)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif (isinstance(default, list) and default and isinstance(default[0], float)
              and isinstance(value, list)):
            value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                     for v in value]
        out[name] = value
    return out


def _qos(reliability: ReliabilityPolicy, depth: int,
         durability: DurabilityPolicy = DurabilityPolicy.VOLATILE) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=durability)


class ReplayClient:
    """Publishes a planned replay to a segmentation node and records its answers.

    Args:
        node_name: fully qualified name of the node (``/slimseg``); ``~/width`` and the
            ``set_parameters`` service are found under it.
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
        self.node_name = "/" + node_name.strip("/")
        self.image_topic = image_topic
        self.labels_topic = labels_topic
        self._context = Context()
        rclpy.init(context=self._context, domain_id=domain_id)
        self._node = Node(f"slimseg_replay_{os.getpid()}", context=self._context,
                          start_parameter_services=False)
        self._lock = threading.Lock()
        self._clock0 = time.monotonic()
        self._width: float | None = None
        # Subscribed before the node exists, so discovery runs while it loads; reliable, because
        # label images of 640x480 and up are lost over best effort between processes.
        self._labels_sub = self._node.create_subscription(
            Image, self.labels_topic, self._on_labels, _qos(ReliabilityPolicy.RELIABLE, 100))
        self._labels_ready = False
        self.recording = ReplayRecording()
        # Reliable like `ros2 bag play` of a reliable recording: frames of 500 KB and more are
        # lost over best effort between processes with default Fast DDS settings.
        self._publishers = {
            topic: self._node.create_publisher(MESSAGE_CLASSES[msgtype], topic,
                                               _qos(ReliabilityPolicy.RELIABLE, 10))
            for topic, msgtype in publish_topics.items()
        }
        self._node.create_subscription(
            Float32, self.node_name + "/width", self._on_width,
            _qos(ReliabilityPolicy.RELIABLE, 1, DurabilityPolicy.TRANSIENT_LOCAL))
        self._node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                       _qos(ReliabilityPolicy.BEST_EFFORT, 10))
        self._param_client = self._node.create_client(
            SetParameters, self.node_name + "/set_parameters")
        self._get_client = self._node.create_client(
            GetParameters, self.node_name + "/get_parameters")
        self._param_types: dict[str, int] = {}
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._spinner = threading.Thread(target=self._spin, name="replay-spin", daemon=True)
        self._spinner.start()

    # -- callbacks (executor thread) ------------------------------------------------------------

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def _now(self) -> float:
        return time.monotonic() - self._clock0

    def _on_width(self, msg: Float32) -> None:
        with self._lock:
            self._width = round(float(msg.data), 6)
            self.recording.widths.append((self._now(), self._width))

    def _on_labels(self, msg: Image) -> None:
        t = self._now()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        # level 1: label maps shrink ~20x in well under a millisecond
        data = zlib.compress(memoryview(msg.data), 1)
        with self._lock:
            self.recording.labels.append(ReceivedLabels(
                stamp, t, self._width, msg.height, msg.width, msg.encoding, msg.step, data))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = self.node_name.lstrip("/")
        for status in msg.status:
            name = status.name.lstrip("/")
            if name == prefix or name.startswith(prefix + ":"):
                with self._lock:
                    self.recording.diagnostics.append(
                        (self._now(), {kv.key: kv.value for kv in status.values}))

    # -- set-up --------------------------------------------------------------------------------

    def wait_for_node(self, timeout_s: float = 120.0,
                      check_alive: Callable[[], str | None] | None = None) -> None:
        """Wait until the node subscribes to the images, answers ``~/width`` and has a labels
        publisher; then subscribe to the labels with the publisher's reliability.

        Raises:
            TimeoutError: not ready within ``timeout_s`` (the message says what is missing).
            RuntimeError: ``check_alive`` returned a reason (e.g. the node process died).
        """
        deadline = time.monotonic() + timeout_s
        image_pub = self._publishers[self.image_topic]
        missing = ""
        while time.monotonic() < deadline:
            if check_alive is not None:
                problem = check_alive()
                if problem:
                    raise RuntimeError(problem)
            labels_pubs = self._node.get_publishers_info_by_topic(self.labels_topic)
            with self._lock:
                has_width = self._width is not None
            if image_pub.get_subscription_count() < 1:
                missing = f"no subscription on {self.image_topic}"
            elif not has_width:
                missing = f"no message on {self.node_name}/width"
            elif not labels_pubs:
                missing = f"no publisher on {self.labels_topic}"
            elif not self._param_client.service_is_ready():
                missing = f"service {self.node_name}/set_parameters not available"
            else:
                self._check_alone(labels_pubs)
                self._subscribe_labels(labels_pubs, max(0.5, deadline - time.monotonic()))
                self._wait_for_reliable_input(min(5.0, max(0.0, deadline - time.monotonic())))
                return
            time.sleep(0.05)
        raise TimeoutError(f"node {self.node_name} not ready after {timeout_s:.0f} s: {missing}")

    def _check_alone(self, labels_publishers: list[Any]) -> None:
        """Refuse to run beside another camera or segmentation node on the same topics: their
        frames and labels would mix with ours (two replays of one bag even share stamps)."""
        cameras = self._node.count_publishers(self.image_topic) - 1  # minus our own
        nodes = {(p.node_namespace.rstrip("/") + "/" + p.node_name) for p in labels_publishers}
        if cameras > 0 or len(nodes) > 1:
            what = (f"{cameras} other publisher(s) on {self.image_topic}" if cameras > 0 else
                    f"{len(nodes)} nodes publishing {self.labels_topic} "
                    f"({', '.join(sorted(nodes))})")
            raise RuntimeError(f"{what} in this ROS domain would mix with the replay; stop them "
                               f"or use a free domain (--domain-id)")

    def _subscribe_labels(self, publishers: list[Any], timeout_s: float) -> None:
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                       for p in publishers)
        if not reliable:
            # a best-effort publisher never matches a reliable subscription
            self._labels_sub = self._node.create_subscription(
                Image, self.labels_topic, self._on_labels,
                _qos(ReliabilityPolicy.BEST_EFFORT, 100))
        kind = "reliable" if reliable else "best_effort"
        # the graph lists the publisher before DDS has matched it with our subscription
        count = getattr(self._labels_sub, "get_publisher_count", None)
        deadline = time.monotonic() + timeout_s
        if count is None:
            time.sleep(min(1.0, timeout_s))  # rclpy without the count (Humble): give it time
        else:
            while count() < len(publishers) and time.monotonic() < deadline:
                time.sleep(0.02)
        if count is not None and count() == 0:
            raise TimeoutError(f"our subscription to {self.labels_topic} matched none of its "
                               f"{len(publishers)} publisher(s) (incompatible QoS?)")
        matched = "?" if count is None else str(count())
        self.recording.notes.append(f"labels subscription {kind}, matched {matched} of "
                                    f"{len(publishers)} publisher(s)")
        self._labels_ready = True

    def _wait_for_reliable_input(self, timeout_s: float) -> None:
        # The node's input_reliability 'auto' re-subscribes once it sees our reliable publisher.
        deadline = time.monotonic() + timeout_s
        while True:
            subs = self._node.get_subscriptions_info_by_topic(self.image_topic)
            kinds = sorted({s.qos_profile.reliability.name.lower() for s in subs})
            if kinds == ["reliable"] or time.monotonic() >= deadline:
                self.recording.notes.append(
                    f"image subscription(s) on {self.image_topic}: {', '.join(kinds)}")
                return
            time.sleep(0.05)

    def get_parameters(self, names: list[str], timeout_s: float = 5.0) -> dict[str, Any]:
        """The node's values of ``names`` (what ``ros2 param get`` shows); unset ones omitted.

        Also remembers each parameter's type, so :meth:`set_parameter` can send ``15`` to a
        double parameter as ``15.0`` (a typed service would reject the integer).
        """
        if not self._get_client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {self.node_name}/get_parameters not available")
        request = GetParameters.Request()
        request.names = list(names)
        future = self._get_client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s) or future.result() is None:
            raise TimeoutError(f"{self.node_name} did not answer get_parameters")
        out = {}
        for name, value in zip(names, future.result().values):
            if value.type == ParameterType.PARAMETER_NOT_SET:
                continue
            self._param_types[name] = value.type
            plain = Parameter.from_parameter_msg(_ParameterMsg(name=name, value=value)).value
            # array parameters come as array.array / numpy: plain lists for JSON
            out[name] = plain.tolist() if hasattr(plain, "tolist") else plain
        return out

    # -- the replay ------------------------------------------------------------------------------

    def set_parameter(self, name: str, value: Any, wait_s: float = 0.0) -> dict[str, Any]:
        """Request a parameter change (like ``ros2 param set``).

        The returned record (also kept in ``recording.params``) is filled in when the node
        answers; with ``wait_s`` > 0 this waits up to that long for the answer.
        """
        entry: dict[str, Any] = {"t": self._now(), "name": name, "value": value,
                                 "successful": None, "reason": "", "t_done": None}
        kind = self._param_types.get(name)
        if kind == ParameterType.PARAMETER_DOUBLE and isinstance(value, int) and not isinstance(
                value, bool):
            value = float(value)
        elif kind == ParameterType.PARAMETER_DOUBLE_ARRAY and isinstance(value, list):
            value = [float(v) for v in value]
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()]
        future = self._param_client.call_async(request)

        def done(fut: Any) -> None:
            result = fut.result()
            entry["t_done"] = self._now()
            if result is not None and result.results:
                entry["successful"] = bool(result.results[0].successful)
                entry["reason"] = str(result.results[0].reason)

        answered = threading.Event()
        future.add_done_callback(done)
        future.add_done_callback(lambda _f: answered.set())
        with self._lock:
            self.recording.params.append(entry)
        if wait_s > 0:
            answered.wait(wait_s)
        return entry

    def run(self, events: Iterable[tuple[float, str, tuple]], *,
            on_frame: Callable[[], None] | None = None, settle_s: float = 2.0,
            expected_frames: int | None = None) -> ReplayRecording:
        """Carry out ``events`` on schedule, then wait for the last answers.

        Args:
            events: ``(t_seconds, kind, payload)`` in time order; kinds: ``publish`` with
                ``(topic, cdr_bytes, frame_stamp_ns_or_None)``, ``param`` with ``(name, value)``.
            on_frame: called after each frame is published (progress bars).
            settle_s: how long to wait after the last event for outstanding labels.
            expected_frames: stop waiting early once this many labels arrived.
        """
        if not self._labels_ready:
            raise RuntimeError("call wait_for_node() first")
        rec = self.recording
        start = time.monotonic()
        self._clock0 = start  # the replay clock starts with the first event
        with self._lock:
            if rec.widths:  # the latched width counts from the start
                rec.widths = [(0.0, rec.widths[-1][1])]
            for entry in rec.params:  # changes made before the start count as at the start
                entry["t"], entry["t_done"] = 0.0, 0.0
            rec.diagnostics = rec.diagnostics[-1:]
            rec.diagnostics = [(0.0, d) for _, d in rec.diagnostics]
        for t_event, kind, payload in events:
            delay = start + t_event - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if kind == "publish":
                topic, data, stamp = payload
                # bytes: published as the serialised message it is (rclpy's publish_raw)
                self._publishers[topic].publish(bytes(data))
                now = self._now()
                if stamp is not None:
                    rec.sent.append((int(stamp), now))
                    if on_frame is not None:
                        on_frame()
            elif kind == "param":
                self.set_parameter(*payload)
                now = self._now()
            else:
                raise ValueError(f"unknown replay event {kind!r}")
            rec.event_times.append(now)
        deadline = time.monotonic() + settle_s
        wanted = len(rec.sent) if expected_frames is None else expected_frames
        while time.monotonic() < deadline:
            with self._lock:
                if len(rec.labels) >= wanted:
                    break
            time.sleep(0.02)
        return rec

    def close(self) -> None:
        """Leave the ROS graph (idempotent)."""
        if not self._context.ok():
            return
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        rclpy.shutdown(context=self._context)
        self._spinner.join(timeout=2.0)

    def __enter__(self) -> ReplayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
