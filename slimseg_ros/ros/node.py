"""The ``slimseg`` node: camera images in, label images out, width chosen at run time.

DESIGN.md section 10 is the contract. In short:

- ``image`` (``sensor_msgs/Image``) or ``image/compressed`` in; ``labels`` (mono8, the input's
  size and header), ``labels_color`` and ``overlay`` (rgb8, only while subscribed), ``~/width``
  (transient local) and ``/diagnostics`` out; ``battery_state`` feeds the width controller.
- The subscription callback only stores the newest frame; one worker thread converts, infers
  and publishes ("latest frame wins"), so no stale frames queue up; replaced frames are counted.
- Every callback of the node runs in one mutually exclusive callback group, so parameter sets
  and the node's own updates of ``width``/``adaptive`` never interleave. The worker never sets
  parameters itself: it triggers a guard condition whose callback does, flagged so the node's
  validation does not take it for an operator's pin.

Run it as ``slimseg_node --ros-args --params-file config/slimseg.yaml -r image:=/camera/image_raw``
or ``python -m slimseg_ros.ros.node ...``.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32

from ..control import ControllerConfig, WidthController
from ..data.pixels import ImageRejected, compressed_to_rgb, image_to_rgb
from ..data.stamps import stamp_ns
from ..runtime import SegmentationEngine, default_model_path, load_engine
from ..widths import match_width
from . import params as P
from .conversions import blend, fill_image, palette_lut
from .diagnostics import DiagnosticsView, NodeStats, diagnostic_status, status_name
from .frames import Frame, LatestSlot
from .qos import (
    battery_qos, choose_reliability, input_qos, latched_qos, output_qos, reliability_name)

try:  # rclpy >= Galactic
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover - older rclpy
    class ExternalShutdownException(Exception):  # type: ignore[no-redef]
        """Stand-in so the except clauses below stay valid."""

__all__ = ["SlimSegNode", "StartupError", "FrameTiming", "main", "run"]

# A zero-copy rgb8 view is read-only; torch warns once about it and only reads it.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
           "ERROR": DiagnosticStatus.ERROR}
_THROTTLE_S = 5.0
_QOS_CHECK_PERIOD_S = 1.0
_DIAGNOSTICS_PERIOD_S = 1.0


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Log what a callback raises instead of letting it stop the executor (never die)."""
    @functools.wraps(method)
    def wrapper(self: Node, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"{method.__name__} failed: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=_THROTTLE_S)
            return None
    return wrapper


class StartupError(RuntimeError):
    """The node cannot start with these parameters; the message says why in one line."""


@dataclass(frozen=True)
class FrameTiming:
    """Where one frame's time went (``time.monotonic()`` seconds), for benchmarks."""

    stamp_ns: int
    """The input header stamp, nanoseconds."""
    received: float
    started: float
    inference_s: float
    published: float
    width: float
    size: tuple[int, int]


class SlimSegNode(Node):
    """Semantic segmentation with a run-time width (see the module docstring).

    Args:
        node_name: defaults to ``slimseg``.
        engine: a ready engine to use instead of loading ``model_path`` (tests, benchmarks).
        **kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ``cli_args``...).

    Raises:
        StartupError: a parameter value or the model is unusable.
    """

    def __init__(self, node_name: str = "slimseg", *, engine: SegmentationEngine | None = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.frame_observer: Callable[[FrameTiming], None] | None = None
        """Called by the worker after each answered frame (benchmarks)."""
        try:
            self._setup(engine)
        except BaseException:
            Node.destroy_node(self)  # the worker does not exist yet
            raise

    def _setup(self, engine: SegmentationEngine | None) -> None:
        try:
            for s in P.NODE_PARAMETERS:
                self.declare_parameter(s.name, s.default, P.descriptor(s))
        except ParameterException as exc:  # wrong type or out of range in the YAML / overrides
            raise StartupError(f"parameter {s.name}: {exc}") from None
        value = {s.name: self.get_parameter(s.name).value for s in P.NODE_PARAMETERS}

        try:
            backend = P.check_choice("backend", value["backend"], P.backend_choices())
            precision = P.check_choice("precision", value["precision"], P.PRECISIONS)
            device = P.check_device(value["device"])
            input_size = P.check_input_size(value["input_size"])
            self._transport = P.check_choice(
                "input_transport", value["input_transport"], P.INPUT_TRANSPORTS)
            self._reliability_mode = P.check_choice(
                "input_reliability", value["input_reliability"], P.reliability_modes())
            config = P.controller_config(value, ControllerConfig())
        except ValueError as exc:
            raise StartupError(str(exc)) from None

        if engine is None:
            try:
                engine = load_engine(
                    value["model_path"] or None, backend=backend, device=device,
                    precision=precision, input_size=input_size,
                    cache_dir=value["engine_cache_dir"] or None,
                    log=lambda text: self.get_logger().info(text))
            except (OSError, ValueError, RuntimeError, ImportError) as exc:
                raise StartupError(f"cannot load the model: {exc}") from None
        self.engine = engine
        meta = engine.meta
        self.declare_parameter("class_names", list(meta.class_names),
                               P.descriptor(P.spec("class_names")), ignore_override=True)
        self.declare_parameter("widths", [float(w) for w in engine.widths],
                               P.descriptor(P.spec("widths")), ignore_override=True)
        self._model_name = str(value["model_path"] or default_model_path() or "default model")
        self._palette = palette_lut(meta.palette)

        try:
            self.controller = WidthController(engine.widths, engine.latency_s, config)
            if not value["adaptive"]:
                self.controller.pin(value["width"])
        except ValueError as exc:
            raise StartupError(str(exc)) from None

        self._publish_color = bool(value["publish_color"])
        self._publish_overlay = bool(value["publish_overlay"])
        self._overlay_alpha = float(value["overlay_alpha"])
        self._max_pixels = int(value["max_image_pixels"])
        self.stats = NodeStats()
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._announce_lock = threading.Lock()
        self._announced: float | None = None
        self._syncing = False
        self._rejected_at_last_status = 0

        self._labels_pub = self.create_publisher(Image, "labels", output_qos())
        self._color_pub = self.create_publisher(Image, "labels_color", output_qos())
        self._overlay_pub = self.create_publisher(Image, "overlay", output_qos())
        self._width_pub = self.create_publisher(Float32, "~/width", latched_qos())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(BatteryState, "battery_state", self._on_battery, battery_qos())
        self._sub = None
        self._sub_key: tuple[str, bool, Any] | None = None
        self._input_reason = ""
        self._update_input_subscription()
        self.create_timer(_QOS_CHECK_PERIOD_S, self._update_input_subscription)
        self.create_timer(_DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._sync_guard = self.create_guard_condition(self._sync_parameters)

        # The parameters still hold the YAML's width/adaptive: make them the truth before any
        # callback can see them.
        self._announce(self.controller.width, self.controller.status(time.monotonic()).reason)
        self._sync_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = threading.Thread(target=self._work, name="slimseg-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {engine.backend} on {engine.device} ({engine.precision}), widths "
            f"{', '.join(f'{w:g}' for w in engine.widths)}, network input "
            f"{engine.input_size[0]}x{engine.input_size[1]}, width {self.controller.width:g} "
            f"({'adaptive' if self.controller.adaptive else 'pinned'})")

    # -- input -----------------------------------------------------------------------------

    def _resolve(self, name: str, only_expand: bool = False) -> str:
        resolve = getattr(self, "resolve_topic_name", None)
        if resolve is not None:
            return resolve(name, only_expand=only_expand)
        from rclpy.expand_topic_name import expand_topic_name  # rclpy without remap lookup

        return expand_topic_name(name, self.get_name(), self.get_namespace())

    def input_topic(self) -> str:
        """The fully qualified topic the node reads images from."""
        if self._transport == "raw":
            return self._resolve("image")
        # Like image_transport: remapping `image` moves `image/compressed` with it, unless
        # `image/compressed` has its own remapping.
        explicit = self._resolve("image/compressed")
        if explicit != self._resolve("image/compressed", only_expand=True):
            return explicit
        return self._resolve("image").rstrip("/") + "/compressed"

    @_guarded
    def _update_input_subscription(self, force: bool = False) -> None:
        topic = self.input_topic()
        compressed = self._transport == "compressed"
        try:
            infos = self.get_publishers_info_by_topic(topic)
        except Exception:  # noqa: BLE001 - a graph query must not stop the timer
            infos = []
        reliability, why = choose_reliability(
            self._reliability_mode, [i.qos_profile.reliability for i in infos])
        key = (topic, compressed, reliability)
        reason = f"{reliability_name(reliability)} ({why})"
        if not force and key == self._sub_key:
            self._input_reason = reason  # same QoS, but the publishers may have changed
            return
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        msg_type = CompressedImage if compressed else Image
        self._sub = self.create_subscription(
            msg_type, topic, self._on_image, input_qos(reliability))
        self._sub_key = key
        self._input_reason = reason
        self.get_logger().info(
            f"subscribed to {topic} ({msg_type.__name__}), {self._input_reason}")

    def _on_image(self, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        self._slot.put(Frame(msg, isinstance(msg, CompressedImage), now))
        self.controller.observe_input(now)

    @_guarded
    def _on_battery(self, msg: BatteryState) -> None:
        now = time.monotonic()
        warning = self.controller.observe_battery(now, msg.percentage, msg.power_supply_status)
        if warning:
            self.get_logger().warning(warning, throttle_duration_sec=_THROTTLE_S)
        decision = self.controller.decide(now)
        if decision.changed:
            self._announce(decision.width, decision.reason)
            self._sync_guard.trigger()

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                if self._slot.closed:
                    return
                continue
            try:
                self._process(frame)
            except Exception as exc:  # noqa: BLE001 - the node must never die of a frame
                with self.stats.lock:
                    self.stats.failed += 1
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=_THROTTLE_S)

    def _to_rgb(self, frame: Frame) -> Any:
        msg = frame.msg
        if frame.compressed:
            return compressed_to_rgb(msg.format, msg.data, self._max_pixels)
        return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian), self._max_pixels)

    def _process(self, frame: Frame) -> None:
        started = time.monotonic()
        try:
            rgb = self._to_rgb(frame)
        except ImageRejected as exc:
            self.stats.reject(exc.kind, str(exc))
            self.get_logger().warning(f"image rejected: {exc}", throttle_duration_sec=_THROTTLE_S)
            return
        decision = self.controller.decide(started)
        if decision.changed:
            self._announce(decision.width, decision.reason)
            self._sync_guard.trigger()
        engine = self.engine
        t0 = time.perf_counter()
        labels = engine.infer(rgb, decision.width)
        inference_s = time.perf_counter() - t0

        header = frame.msg.header
        out = Image()
        out.header = header
        self._labels_pub.publish(fill_image(out, labels, "mono8"))
        want_color = self._publish_color and self._color_pub.get_subscription_count() > 0
        want_overlay = self._publish_overlay and self._overlay_pub.get_subscription_count() > 0
        if want_color or want_overlay:
            color = self._palette[labels]
            if want_color:
                out = Image()
                out.header = header
                self._color_pub.publish(fill_image(out, color, "rgb8"))
            if want_overlay:
                out = Image()
                out.header = header
                mixed = blend(rgb, color, self._overlay_alpha)
                self._overlay_pub.publish(fill_image(out, mixed, "rgb8"))

        done = time.monotonic()
        self.controller.observe_frame(done, decision.width, done - started)
        self.stats.answered(done, done - frame.received, inference_s)
        observer = self.frame_observer
        if observer is not None:
            observer(FrameTiming(stamp_ns(header), frame.received, started, inference_s, done,
                                 decision.width, labels.shape[:2]))

    # -- width and parameters --------------------------------------------------------------

    def _announce(self, width: float, reason: str) -> None:
        """Publish ``~/width`` and log, once per change (callbacks and worker both call it)."""
        with self._announce_lock:
            if self._announced is not None and math.isclose(self._announced, width):
                return
            self._announced = width
            self._width_pub.publish(Float32(data=float(width)))
        self.get_logger().info(f"width {width:g}: {reason}")

    @_guarded
    def _sync_parameters(self) -> None:
        """Make the ``width``/``adaptive`` parameters show the controller's state."""
        width, adaptive = self.controller.width, self.controller.adaptive
        updates = []
        if not math.isclose(self.get_parameter("width").value, width):
            updates.append(Parameter("width", Parameter.Type.DOUBLE, float(width)))
        if self.get_parameter("adaptive").value != adaptive:
            updates.append(Parameter("adaptive", Parameter.Type.BOOL, adaptive))
        if not updates:
            return
        self._syncing = True
        try:
            self.set_parameters(updates)
        finally:
            self._syncing = False

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check every value first, then apply them all (nothing changes on a rejection)."""
        if self._syncing:
            return SetParametersResult(successful=True)
        try:
            return self._apply_parameters(parameters)
        except Exception as exc:  # noqa: BLE001 - a parameter must never stop the node
            self.get_logger().error(f"setting parameters failed: {type(exc).__name__}: {exc}")
            return SetParametersResult(successful=False,
                                       reason=f"internal error: {type(exc).__name__}: {exc}")

    def _apply_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        values = {p.name: p.value for p in parameters}
        try:
            pin = match_width(values["width"], self.engine.widths) if "width" in values else None
            transport = P.check_choice("input_transport", values.get(
                "input_transport", self._transport), P.INPUT_TRANSPORTS)
            reliability = P.check_choice("input_reliability", values.get(
                "input_reliability", self._reliability_mode), P.reliability_modes())
            if any(name in P.CONTROLLER_PARAMETERS for name in values):
                # Raises with nothing changed when the config is bad or leaves no model width.
                self.controller.set_config(
                    P.controller_config(values, self.controller.config))
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))

        self._publish_color = bool(values.get("publish_color", self._publish_color))
        self._publish_overlay = bool(values.get("publish_overlay", self._publish_overlay))
        self._overlay_alpha = float(values.get("overlay_alpha", self._overlay_alpha))
        self._max_pixels = int(values.get("max_image_pixels", self._max_pixels))
        if (transport, reliability) != (self._transport, self._reliability_mode):
            self._transport, self._reliability_mode = transport, reliability
            self._update_input_subscription(force=True)
        if pin is not None:
            decision = self.controller.pin(pin)
            self._announce(decision.width, decision.reason)
        if "adaptive" in values:
            self.controller.set_adaptive(bool(values["adaptive"]))
        # The worker applies a new config or adaptive mode at the next frame; the parameters
        # that mirror the controller are brought in line once this set is stored.
        self._sync_guard.trigger()
        return SetParametersResult(successful=True)

    # -- diagnostics -----------------------------------------------------------------------

    def diagnostics_view(self) -> DiagnosticsView:
        """A snapshot of everything ``/diagnostics`` shows."""
        now = time.monotonic()
        status = self.controller.status(now)
        s = self.stats
        with s.lock:
            processed, rejected, failed = s.processed, s.rejected, s.failed
            by_kind, last_rejection = dict(s.rejected_by_kind), s.last_rejection
            output_fps = s.output_rate.rate(now)
        engine = self.engine
        return DiagnosticsView(
            width=status.width, adaptive=status.adaptive, backend=engine.backend,
            device=engine.device, precision=engine.precision, input_fps=status.input_fps,
            output_fps=output_fps, latency_ms=s.latency.percentiles_ms(50, 95),
            inference_ms=s.inference.percentiles_ms(50, 95), received=self._slot.put_count,
            processed=processed, dropped=self._slot.dropped, rejected=rejected,
            rejected_by_kind=by_kind, last_rejection=last_rejection, failed=failed,
            battery=status.battery, reason=status.reason, switches=status.switches,
            budget_ms=status.budget_s * 1e3, input_topic=self.input_topic(),
            input_reliability=self._input_reason, model=self._model_name,
            input_size=tuple(engine.input_size),  # type: ignore[arg-type]
            rejected_recently=rejected - self._rejected_at_last_status)

    @_guarded
    def _publish_diagnostics(self) -> None:
        view = self.diagnostics_view()
        self._rejected_at_last_status = view.rejected
        level, message, pairs = diagnostic_status(view)
        status = DiagnosticStatus(
            level=_LEVELS[level], name=status_name(self.get_name()), message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in pairs])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    # -- shutdown --------------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (after the frame in hand); call before ``destroy_node``."""
        self._slot.close()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout)

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()


def run(args: list[str] | None = None,
        frame_observer: Callable[[FrameTiming], None] | None = None) -> int:
    """Run a node until SIGINT/SIGTERM; the exit status (0, or 1 if it could not start).

    Args:
        args: command line (``--ros-args ...``); None = ``sys.argv``.
        frame_observer: set as the node's ``frame_observer`` (benchmarks).
    """
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger("slimseg")
    node: SlimSegNode | None = None
    code = 0
    try:
        node = SlimSegNode()
        node.frame_observer = frame_observer
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        logger.error(str(exc))
        code = 1
    except Exception:  # noqa: BLE001
        if rclpy.ok():
            raise
        # A signal shut the context down while the node was still starting: a clean stop.
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def main(args: list[str] | None = None) -> int:
    """Console script ``slimseg_node``: run the node until SIGINT/SIGTERM; exit status."""
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
