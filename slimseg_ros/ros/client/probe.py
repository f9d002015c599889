"""This process's side of a node: a probe over DDS, and collectors of what the node publishes.

:class:`Probe` joins the node's domain on its own rclpy context with an executor thread: the
node's labels collected by header stamp, ``~/width``, its ``/diagnostics`` status (read by
:func:`~slimseg_ros.ros.diagnostics.status_values`, the contract's status name), publishers,
and the parameter and lifecycle services ``ros2 param`` and ``ros2 lifecycle`` call.

Nothing here sleeps blindly: every wait has a deadline and returns as soon as what it waits for
has happened.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from ...data.stamps import stamp_ns
from ..diagnostics import status_values
from ..qos import latched_qos
from .wait import wait_until

__all__ = ["Collector", "Probe"]


class Collector:
    """Keeps what arrives on a topic with its arrival time (``time.monotonic()``) and, for
    messages with a header, its stamp in nanoseconds; waits on it.

    Args:
        transform: store ``transform(msg)`` instead of the message (e.g. compressed pixels).
        keep: how many to keep (None: all).
    """

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile | int = 10,
                 keep: int | None = 1000,
                 transform: Callable[[Any], Any] | None = None) -> None:
        self._cond = threading.Condition()
        self._records: list[tuple[float, int | None, Any]] = []
        self._keep = keep
        self._transform = transform
        self.subscription = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        now = time.monotonic()
        header = getattr(msg, "header", None)
        stamp = stamp_ns(header) if header is not None else None
        item = self._transform(msg) if self._transform is not None else msg
        with self._cond:
            self._records.append((now, stamp, item))
            if self._keep is not None and len(self._records) > self._keep:
                del self._records[: len(self._records) - self._keep]
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        """What arrived, oldest first."""
        with self._cond:
            return [item for _, _, item in self._records]

    def timed(self) -> list[tuple[float, Any]]:
        """(arrival time, what arrived), oldest first."""
        with self._cond:
            return [(t, item) for t, _, item in self._records]

    def stamped(self) -> list[tuple[float, int | None, Any]]:
        """(arrival time, header stamp ns or None, what arrived), oldest first."""
        with self._cond:
            return list(self._records)

    def newest(self) -> Any | None:
        with self._cond:
            return self._records[-1][2] if self._records else None

    def clear(self) -> None:
        with self._cond:
            self._records.clear()

    def wait_for(self, match: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first kept item for which ``match`` is true, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, _, item in self._records:
                    if match(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wait_for_stamp(self, stamp: int, timeout: float) -> Any | None:
        """The item whose header stamp is ``stamp`` ns, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, s, item in self._records:
                    if s == stamp:
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def arrival_of(self, stamps: Iterable[int]) -> dict[int, float]:
        """Arrival time of each kept item whose stamp is in ``stamps``."""
        wanted = set(stamps)
        with self._cond:
            return {s: t for t, s, _ in self._records if s in wanted}


class Probe:
    """This process's side of a node: own context and domain, a probe node spinning in a
    thread, the node's ``~/width`` and ``/diagnostics``, optionally its labels.

    Args:
        node_name: the node's fully qualified name (``/slimseg``); ``~/width``, its status
            and its parameter services are found by it.
        domain_id: ROS domain to join (None: ``ROS_DOMAIN_ID`` or 0).
        labels_topic: collect label images from here (None: do not).
        labels_qos: their subscription's QoS (default: reliable, depth 100; large label images
            are lost over best effort between processes).
        keep_labels: how many label images to keep (None: all).
        probe_name: this probe node's name.
    """

    def __init__(self, node_name: str = "/slimseg", *, domain_id: int | None = None,
                 labels_topic: str | None = "/labels", labels_qos: QoSProfile | int = 100,
                 keep_labels: int | None = 1000, probe_name: str | None = None) -> None:
        self.node_fqn = "/" + node_name.strip("/")
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(probe_name or f"slimseg_probe_{os.getpid()}", context=self.context,
                         start_parameter_services=False)
        self.width = Collector(self.node, Float32, self.node_fqn + "/width", latched_qos())
        self.diagnostics = Collector(self.node, DiagnosticArray, "/diagnostics", 10, keep=100,
                                     transform=self._stamped_status)
        self.labels = (Collector(self.node, Image, labels_topic, labels_qos, keep=keep_labels)
                       if labels_topic else None)
        self._set_client = self.node.create_client(
            SetParameters, self.node_fqn + "/set_parameters")
        self._get_client = self.node.create_client(
            GetParameters, self.node_fqn + "/get_parameters")
        self._lifecycle: dict[str, Any] = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, name="probe-spin", daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def _stamped_status(self, array: DiagnosticArray) -> tuple[float, dict[str, str]] | None:
        """(wall time the status was made, its values), None for other nodes' statuses."""
        values = status_values(array, self.node_fqn)
        if values is None:
            return None
        return stamp_ns(array.header) * 1e-9, values

    # -- wiring ------------------------------------------------------------------------------

    def add_node(self, node: Node) -> None:
        """Spin ``node`` (made with ``context=probe.context``) in this probe's executor."""
        self.executor.add_node(node)

    def collect(self, msg_type: type, topic: str, qos: QoSProfile | int = 10,
                keep: int | None = 1000,
                transform: Callable[[Any], Any] | None = None) -> Collector:
        """A :class:`Collector` on ``topic`` of this probe's node."""
        return Collector(self.node, msg_type, topic, qos, keep, transform)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    # -- the node's state ----------------------------------------------------------------------

    def current_width(self) -> float | None:
        """The newest ``~/width`` (rounded to 6 digits), None before the first."""
        msg = self.width.newest()
        return None if msg is None else round(float(msg.data), 6)

    def wait_started(self, timeout_s: float,
                     check_alive: Callable[[], str | None] | None = None) -> float:
        """Wait for the node's first ``~/width`` (latched: it is sent once the model is loaded
        and warm); that width.

        Raises:
            TimeoutError: none within ``timeout_s``.
            RuntimeError: ``check_alive`` returned a reason (e.g. the process exited).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check_alive is not None and (problem := check_alive()):
                raise RuntimeError(problem)
            if self.width.wait_for(lambda _m: True, 0.2) is not None:
                return self.current_width()  # type: ignore[return-value]
        raise TimeoutError(f"node {self.node_fqn} not up after {timeout_s:.0f} s "
                           f"(no message on {self.node_fqn}/width)")

    def wait_width(self, width: float, timeout_s: float) -> bool:
        """Wait until the newest ``~/width`` says ``width``."""
        return bool(wait_until(lambda: self.current_width() is not None
                               and abs(self.current_width() - width) < 1e-6, timeout_s))

    def statuses(self) -> list[tuple[float, float, dict[str, str]]]:
        """(arrival monotonic, made wall time, values) of every kept status of the node."""
        return [(t, item[0], item[1]) for t, item in self.diagnostics.timed() if item]

    def status(self) -> dict[str, str]:
        """The node's newest status values, {} before the first."""
        found = self.statuses()
        return found[-1][2] if found else {}

    def wait_status(self, predicate: Callable[[dict[str, str]], bool],
                    timeout_s: float) -> dict[str, str] | None:
        """The newest status once it satisfies ``predicate``, None after ``timeout_s``."""
        return wait_until(lambda: (lambda s: s if s and predicate(s) else None)(self.status()),
                          timeout_s)

    def fresh_status(self, after: float, timeout_s: float) -> dict[str, str] | None:
        """The first status the node made after wall time ``after`` (``time.time()``)."""
        return wait_until(lambda: next((v for _, made, v in self.statuses() if made > after),
                                       None), timeout_s)

    # -- parameters (what `ros2 param get/set` call) ---------------------------------------------

    def get_parameters(self, names: Sequence[str], timeout_s: float = 5.0) -> dict[str, Any]:
        """The node's values of ``names``; unset ones are left out."""
        if not self._get_client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {self.node_fqn}/get_parameters not available")
        request = GetParameters.Request(names=list(names))
        result = self._call(self._get_client, request, timeout_s)
        if result is None:
            raise TimeoutError(f"{self.node_fqn} did not answer get_parameters")
        out = {}
        for name, value in zip(names, result.values):
            if value.type == ParameterType.PARAMETER_NOT_SET:
                continue
            plain = Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
            # array parameters come as array.array / numpy: plain lists for JSON
            out[name] = plain.tolist() if hasattr(plain, "tolist") else plain
        return out

    def set_parameters_async(self, values: Mapping[str, Any],
                             on_done: Callable[[list[tuple[bool, str]] | None], None]) -> None:
        """Request parameter changes; ``on_done`` gets (successful, reason) per parameter (or
        None when the service gave no answer), on the executor thread."""
        request = SetParameters.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg()
            for name, value in values.items()])

        def done(future: Any) -> None:
            result = future.result()
            on_done(None if result is None else
                    [(bool(r.successful), str(r.reason)) for r in result.results])

        self._set_client.call_async(request).add_done_callback(done)

    def set_parameters(self, values: Mapping[str, Any], timeout_s: float = 30.0
                       ) -> list[tuple[bool, str]]:
        """Set parameters (each checked by the node on its own); (successful, reason) each."""
        if not self._set_client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {self.node_fqn}/set_parameters not available")
        answers: list[Any] = []
        answered = threading.Event()
        self.set_parameters_async(values, lambda r: (answers.append(r), answered.set()))
        if not answered.wait(timeout_s) or answers[0] is None:
            raise TimeoutError(f"{self.node_fqn} did not answer set_parameters")
        return answers[0]

    def parameter_service_ready(self) -> bool:
        return self._set_client.service_is_ready()

    # -- lifecycle (what `ros2 lifecycle get/set` call) ------------------------------------------

    def _lifecycle_client(self, kind: str) -> Any:
        from lifecycle_msgs.srv import ChangeState, GetState

        if kind not in self._lifecycle:
            srv = {"get_state": GetState, "change_state": ChangeState}[kind]
            self._lifecycle[kind] = self.node.create_client(srv, f"{self.node_fqn}/{kind}")
        return self._lifecycle[kind]

    def lifecycle_state(self, timeout_s: float = 10.0) -> str:
        """The managed node's state label (``unconfigured``, ``inactive``, ``active``...)."""
        from lifecycle_msgs.srv import GetState

        client = self._lifecycle_client("get_state")
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {self.node_fqn}/get_state not available")
        result = self._call(client, GetState.Request(), timeout_s)
        if result is None:
            raise TimeoutError(f"{self.node_fqn} did not answer get_state")
        return str(result.current_state.label)

    def change_state_async(self, transition: str,
                           on_done: Callable[[bool | None], None]) -> None:
        """Request a transition by label; ``on_done`` gets whether it succeeded (None: no
        answer), on the executor thread. The service must be up
        (:meth:`change_state` waits for it)."""
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.label = transition

        def done(future: Any) -> None:
            result = future.result()
            on_done(None if result is None else bool(result.success))

        self._lifecycle_client("change_state").call_async(request).add_done_callback(done)

    def change_state(self, transition: str, timeout_s: float = 300.0) -> bool:
        """Ask the managed node for a transition by label (``configure``, ``activate``,
        ``deactivate``, ``cleanup``, ``shutdown``); whether it succeeded. ``configure`` returns
        once the engines are built, so give it time."""
        client = self._lifecycle_client("change_state")
        if not client.wait_for_service(timeout_sec=min(timeout_s, 30.0)):
            raise TimeoutError(f"service {self.node_fqn}/change_state not available")
        answers: list[bool | None] = []
        answered = threading.Event()
        self.change_state_async(transition, lambda r: (answers.append(r), answered.set()))
        if not answered.wait(timeout_s) or answers[0] is None:
            raise TimeoutError(f"{self.node_fqn} did not answer change_state {transition}")
        return bool(answers[0])

    def _call(self, client: Any, request: Any, timeout_s: float) -> Any:
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(timeout_s) else None

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the ROS graph (idempotent)."""
        if not self.context.ok():
            return
        nodes = list(self.executor.get_nodes())  # the probe and any added with add_node
        self.executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._spinner.join(timeout=2.0)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
