"""What the plain and the managed node share: parameters, engines, input, worker, outputs.

:class:`SlimSegCore` is a mixin for an rclpy ``Node`` (``SlimSegNode``) or a lifecycle node
(``SlimSegLifecycleNode``); it holds every code path of the node, in steps the two call in their
own order (DESIGN.md section 10):

==========================  ===================================  =============================
step                        plain node                           managed node
==========================  ===================================  =============================
:meth:`_declare`            construction                         construction
:meth:`_read_settings`      construction (checkpoint header:     ``configure``
                            milliseconds)
:meth:`_open_outputs`       construction                         ``configure`` (lifecycle pubs)
:meth:`_open_inputs`        construction (frames counted,        ``activate``
                            dropped until ready)
:meth:`_build_engine`       a loader thread; the executor        ``configure`` (its own callback
                            spins meanwhile                      group: parameters answer)
:meth:`_adopt_engine`       when the loader is done              ``configure``
:meth:`_start_worker`       when the loader is done              ``activate``
:meth:`_stop_worker`        stop                                 ``deactivate``
:meth:`_release_engine`     exit                                 ``cleanup``
==========================  ===================================  =============================

- The subscription callback only stores the newest frame; one worker thread converts, infers
  and publishes ("latest frame wins"), so no stale frames queue up; replaced frames are counted.
- Parameter sets, the node's own updates of ``width``/``adaptive`` and the graph checks share
  the node's default (mutually exclusive) callback group. The worker never sets parameters: it
  triggers a guard condition whose callback does, marked (per thread) so the node's validation
  does not take it for an operator's pin.
- A parameter set is checked against the checkpoint's metadata, read before any engine exists,
  so ``ros2 param set`` answers, and answers right, while engines are still being built.
- Integers are taken for doubles everywhere (parameter files, ``-p``, ``ros2 param set``).
- Stopping never races a publish: the worker publishes under a lock that closing takes first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32, String

from ..control import ControllerConfig, PointController, check_config, check_pin
from ..control.agreement import AgreementMonitor
from ..eval.metrics import label_agreement
from ..data.pixels import ImageRejected, compressed_to_rgb, image_to_rgb
from ..data.stamps import stamp_ns
from ..runtime import (
    PointEngine, SegmentationEngine, format_size, load_point_engine, model_metadata)
from ..widths import format_widths
from . import params as P
from .conversions import blend, fill_image, palette_lut
from .diagnostics import DiagnosticsView, NodeStats, diagnostic_status, status_name
from .operating_points import (
    front_text, make_point_controller, operating_point_json, pinned_words)
from .frames import Frame, LatestSlot
from .input_loss import InputLossMeter, loss_warning, profile_hint
from .qos import (
    InputQosChooser, battery_qos, input_qos, latched_qos, output_qos, reliability_name)

__all__ = ["FrameTiming", "Settings", "SlimSegCore", "StartupError"]

# A zero-copy rgb8 view is read-only; torch warns once about it and only reads it.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
           "ERROR": DiagnosticStatus.ERROR}
_THROTTLE_S = 5.0
_QOS_CHECK_PERIOD_S = 1.0
_DIAGNOSTICS_PERIOD_S = 1.0
_WORKER_JOIN_S = 1.5
_LOSS_LOG_S = 10.0
# Declared by rclpy itself; never reported as unknown.
_RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Log what a callback raises instead of letting it stop the executor (never die)."""
    @functools.wraps(method)
    def wrapper(self: SlimSegCore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            if not self._closing:
                self.get_logger().error(f"{method.__name__} failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=_THROTTLE_S)
            return None
    return wrapper


class StartupError(RuntimeError):
    """The node cannot start (or configure) with these parameters; the message says why in
    one line."""


class _Cancelled(Exception):
    """The node closed while its engines were being built."""


@dataclasses.dataclass(frozen=True)
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
    network_size: tuple[int, int] = (0, 0)
    """The operating point's network input size (H, W)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The start-up parameters, checked, and the checkpoint's metadata."""

    model_path: Path | None
    """The checkpoint file (None: the engine was given, tests and benchmarks)."""
    meta: Any
    """Its :class:`~slimseg_ros.model.checkpoint.CheckpointMeta`."""
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int] | None
    cache_dir: str | None
    input_sizes: list[tuple[int, int]] | None = None
    """The operating points' sizes, primary first (None: ``input_size`` alone)."""
    latency_table: str | None = None
    """A device latency table file to seed the controller (None: the start-up profile)."""

    @property
    def widths(self) -> tuple[float, ...]:
        return tuple(sorted(float(w) for w in self.meta.widths))

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The operating points' input sizes, primary first."""
        return self.input_sizes or [self.input_size or tuple(self.meta.input_size)]


class SlimSegCore:
    """The node's behaviour, mixed into an rclpy ``Node`` (see the module docstring).

    Subclasses call :meth:`_init_core` right after ``Node.__init__`` and then the steps in their
    order; they provide :meth:`make_executor`, :meth:`keep_running` and :meth:`exit_code` for
    :func:`~slimseg_ros.ros.entry.run_node`.
    """

    managed = False
    """True for the lifecycle node (its start-up parameters change while unconfigured)."""

    def _init_core(self) -> None:
        self.frame_observer: Callable[[FrameTiming], None] | None = None
        """Called by the worker after each answered frame (benchmarks)."""
        self.engine: PointEngine | None = None
        self.controller: PointController | None = None
        self._latency_source = self._accuracy_source = ""
        self._agreement = AgreementMonitor(period_s=0.0)
        self._agreement_value: float | None = None
        self._reference: tuple[float, tuple[int, int]] | None = None
        """The most accurate operating point: what agreement is measured against."""
        self.stats = NodeStats()
        self.settings: Settings | None = None
        self._phase = "starting"
        self._closing = False
        self._serving = False
        self._state_lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._outputs_open = False
        self._internal = threading.local()
        self._announce_lock = threading.Lock()
        self._announced: float | None = None
        self._announced_point: tuple[float, tuple[int, int]] | None = None
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._worker: threading.Thread | None = None
        self._busy = 0  # engine builds in progress (cannot be interrupted)
        self._outputs: dict[str, Any] = {}
        self._diag_timer: Any = None
        self._sub: Any = None
        self._sub_key: tuple[str, bool, Any] | None = None
        self._subscribed_at: float | None = None
        self._heard: dict[bytes, float] = {}
        self._loss = InputLossMeter()
        self._profile_hint = profile_hint()
        self._battery_sub: Any = None
        self._qos_timer: Any = None
        self._qos = InputQosChooser()
        self._input_reason = "not subscribed"
        self._rejected_at_last_status = 0
        self._palette = palette_lut([])
        self._transport = "raw"
        self._reliability_mode = "auto"
        self._publish_color = self._publish_overlay = True
        self._overlay_alpha = 0.5
        self._max_pixels = P.DEFAULT_MAX_IMAGE_PIXELS
        self._pin_pending = False
        self._pins_before_ready: set[str] = set()
        """What an operator pinned before the engines existed (applied when they are)."""
        self._sync_guard = self.create_guard_condition(self._sync_parameters)
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
        if profile:  # large frames cross only with the right transport settings: say which
            self.get_logger().info(f"Fast DDS profile {profile}")

    # -- for the spin loop (entry.run_node) ------------------------------------------------

    def make_executor(self) -> Any:
        return SingleThreadedExecutor()

    def keep_running(self) -> bool:
        return True

    def exit_code(self) -> int:
        return 0

    def close(self) -> bool:
        """Stop the worker (after the frame in hand) and every output; True when an engine build
        is still running in another thread (it cannot be interrupted: the caller abandons it).
        Call before ``destroy_node``; idempotent."""
        with self._state_lock:  # after this, no build step logs or adopts anything
            self._closing = True
        self._stop_worker()
        with self._publish_lock:
            self._outputs_open = False
        return self._busy > 0

    def destroy_node(self) -> None:
        """Close, then destroy the rclpy node (the next class in either node's MRO)."""
        self.close()
        super().destroy_node()  # type: ignore[misc]

    # -- parameters ------------------------------------------------------------------------

    def _declare(self) -> None:
        """Declare the table's parameters (the checkpoint's follow in :meth:`_read_settings`).

        Raises:
            StartupError: a value given at start has a type the parameter cannot take.
        """
        self._coerce_start_values()
        for s in P.NODE_PARAMETERS:
            try:
                self.declare_parameter(s.name, s.default, P.descriptor(s, self.managed))
            except Exception as exc:  # rclpy's ParameterException family: range, type
                raise StartupError(f"parameter {s.name}: {exc}") from None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for name in self._start_values():
            if name not in P.ALL_NAMES and name not in _RCLPY_PARAMETERS:
                self.get_logger().warning(
                    f"ignoring a start-up value: {P.unknown_parameter(name, P.ALL_NAMES)}")

    def _start_values(self) -> dict[str, Any]:
        # rclpy keeps the values of parameter files, -p and parameter_overrides per node here;
        # reading them is the only way to fix their types before they are declared.
        return getattr(self, "_parameter_overrides", {})

    def _coerce_start_values(self) -> None:
        values = self._start_values()
        for s in P.NODE_PARAMETERS:
            given = values.get(s.name)
            if given is None:
                continue
            declared = Parameter.Type.from_parameter_value(s.default).value
            try:
                fixed = P.coerce(s.name, declared, given.type_.value, given.value)
            except ValueError as exc:
                raise StartupError(f"parameter {exc}") from None
            if fixed is not given.value:
                values[s.name] = Parameter(s.name, value=fixed)

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        """What the parameter services call (``ros2 param set``, ``ros2 param load``): unknown
        names and types are answered in words, integers are taken for doubles."""
        fixed = []
        for p in parameter_list:
            if not self.has_parameter(p.name):
                return SetParametersResult(successful=False, reason=P.unknown_parameter(
                    p.name, P.ALL_NAMES))
            declared = self.describe_parameter(p.name)
            if p.type_ != Parameter.Type.NOT_SET and not declared.dynamic_typing:
                try:
                    value = P.coerce(p.name, declared.type, p.type_.value, p.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                p = Parameter(p.name, value=value)
            fixed.append(p)
        return super().set_parameters_atomically(fixed)  # type: ignore[misc]

    @contextlib.contextmanager
    def _as_node(self) -> Iterator[None]:
        """Parameter changes made meanwhile (in this thread) are the node's own: they mirror its
        state and pass its checks."""
        self._internal.active = True
        try:
            yield
        finally:
            self._internal.active = False

    def _set_internal(self, values: dict[str, Any]) -> None:
        """Set parameters as the node itself (mirroring its state)."""
        with self._as_node():
            self.set_parameters([Parameter(k, value=v) for k, v in values.items()])

    def _value(self, name: str) -> Any:
        value = self.get_parameter(name).value
        return value.tolist() if hasattr(value, "tolist") else value

    def _read_settings(self) -> Settings:
        """Check the parameters and read the checkpoint's header; set ``widths`` and
        ``class_names`` from it.

        Raises:
            StartupError: one line: what is wrong and what is allowed.
        """
        v = {s.name: self._value(s.name) for s in P.NODE_PARAMETERS}
        try:
            backend = P.check_choice("backend", v["backend"], P.backend_choices())
            precision = P.check_choice("precision", v["precision"], P.PRECISIONS)
            device = P.check_device(v["device"])
            input_size = P.check_input_size(v["input_size"])
            input_sizes = P.check_input_sizes(v["input_sizes"], input_size)
            P.check_choice("input_transport", v["input_transport"], P.INPUT_TRANSPORTS)
            P.check_choice("input_reliability", v["input_reliability"], P.reliability_modes())
            config = P.controller_config(v, ControllerConfig())
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        if self.engine is not None and self.settings is None:  # given ready (tests, benches)
            path, meta = None, self.engine.meta
            if isinstance(self.engine, PointEngine):  # its sizes are the points' sizes
                input_sizes = list(self.engine.sizes)
        else:
            try:
                path, meta = model_metadata(v["model_path"] or None)
            except (OSError, ValueError) as exc:
                raise StartupError(f"cannot load the model: {exc}") from None
        settings = Settings(path, meta, backend, device, precision, input_size,
                            v["engine_cache_dir"] or None, input_sizes,
                            v["latency_table"] or None)
        try:
            check_config(settings.widths, config)
            if not v["adaptive"]:
                check_pin(v["width"], settings.widths, config)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        with self._state_lock:
            self.settings = settings
            self._show_checkpoint(settings)
        return settings

    def _show_checkpoint(self, settings: Settings) -> None:
        values = {"class_names": [str(n) for n in settings.meta.class_names],
                  "widths": [float(w) for w in settings.widths]}
        for name, value in values.items():
            if not self.has_parameter(name):
                with self._as_node():
                    self.declare_parameter(name, value,
                                           P.descriptor(P.spec(name), self.managed),
                                           ignore_override=True)
            elif self._value(name) != value:
                self._set_internal({name: value})

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check every value first, then apply them all (nothing changes on a rejection)."""
        if getattr(self._internal, "active", False):
            return SetParametersResult(successful=True)
        try:
            with self._state_lock:
                return self._apply_parameters({p.name: p.value for p in parameters})
        except Exception as exc:  # noqa: BLE001 - a parameter must never stop the node
            self.get_logger().error(f"setting parameters failed: {type(exc).__name__}: {exc}")
            return SetParametersResult(successful=False,
                                       reason=f"internal error: {type(exc).__name__}: {exc}")

    def _refuse_start_up_change(self, names: list[str]) -> str | None:
        """Why start-up or checkpoint parameters cannot change now (None: they can)."""
        fixed = [n for n in names if P.spec(n) in P.CHECKPOINT_PARAMETERS]
        if fixed:
            return (f"{fixed[0]} comes from the checkpoint (model_path) and cannot be set")
        if names and self._phase != "unconfigured":
            return (f"{names[0]} can change only while the node is unconfigured: "
                    f"`ros2 lifecycle set {self.get_fully_qualified_name()} cleanup` first; "
                    f"the next configure loads it")
        return None

    def _apply_parameters(self, values: dict[str, Any]) -> SetParametersResult:
        start_up = [n for n in values if n in P.STARTUP_PARAMETERS]
        refusal = self._refuse_start_up_change(start_up)
        if refusal:
            return SetParametersResult(successful=False, reason=refusal)
        current = {name: self._value(name) for name in P.CONTROLLER_PARAMETERS}
        # Unconfigured, the next configure checks everything against the model it loads.
        widths = (self.settings.widths if self.settings is not None
                  and self._phase != "unconfigured" else None)
        try:
            for name, choices in (("backend", P.backend_choices()),
                                  ("precision", P.PRECISIONS),
                                  ("input_transport", P.INPUT_TRANSPORTS),
                                  ("input_reliability", P.reliability_modes())):
                if name in values:
                    P.check_choice(name, values[name], choices)
            if "device" in values:
                P.check_device(values["device"])
            if "input_size" in values or "input_sizes" in values:
                P.check_input_sizes(
                    values.get("input_sizes", self._value("input_sizes")),
                    P.check_input_size(values.get("input_size", self._value("input_size"))))
            config = P.controller_config(values, P.controller_config(current))
            pin = None
            size_pin: tuple[int, int] | None = None
            if widths is not None:
                check_config(widths, config)
                if "width" in values:
                    pin = check_pin(values["width"], widths, config)
            if "resolution" in values:
                sizes = (self.settings.sizes if self.settings is not None
                         and self._phase != "unconfigured" else None)
                size_pin = P.check_resolution(values["resolution"], sizes)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))

        self._publish_color = bool(values.get("publish_color", self._publish_color))
        self._publish_overlay = bool(values.get("publish_overlay", self._publish_overlay))
        self._overlay_alpha = float(values.get("overlay_alpha", self._overlay_alpha))
        self._max_pixels = int(values.get("max_image_pixels", self._max_pixels))
        if "agreement_period_s" in values:
            self._agreement.period_s = float(values["agreement_period_s"])
        transport = values.get("input_transport", self._transport)
        reliability = values.get("input_reliability", self._reliability_mode)
        if (transport, reliability) != (self._transport, self._reliability_mode):
            self._transport, self._reliability_mode = transport, reliability
            if self._sub is not None:
                self._update_input_subscription(force=True)
        ctrl = self.controller
        if ctrl is not None:
            if any(name in P.CONTROLLER_PARAMETERS for name in values):
                ctrl.set_config(config)
            if pin is not None:
                decision = ctrl.pin(pin)
                self._announce(decision.width, decision.reason, decision.size)
            if "resolution" in values:
                decision = ctrl.pin_size(size_pin)
                self._announce(decision.width, decision.reason, decision.size)
            if "adaptive" in values and bool(values["adaptive"]) != ctrl.adaptive:
                ctrl.set_adaptive(bool(values["adaptive"]))
                self.get_logger().info(
                    f"adaptive {'on: adapting from' if ctrl.adaptive else 'off: holding'} "
                    f"width {ctrl.width:g}, input {format_size(ctrl.size)}")
            # New limits apply at once, not at the next frame.
            decision = ctrl.decide(time.monotonic())
            if decision.changed:
                self._announce(decision.width, decision.reason, decision.size)
        elif "adaptive" not in values and ("width" in values or (
                "resolution" in values and size_pin is not None)):
            self._pin_pending = True  # pinned before the engines exist: adaptive goes false
            self._pins_before_ready.add("width" if "width" in values else "resolution")
        # The parameters that mirror the controller are brought in line once this set is stored.
        self._sync_guard.trigger()
        return SetParametersResult(successful=True)

    @_guarded
    def _sync_parameters(self) -> None:
        """Make the ``width``/``adaptive`` parameters show the controller's state."""
        ctrl = self.controller
        if ctrl is None:
            if self._pin_pending:
                self._pin_pending = False
                self._set_internal({"adaptive": False})
            return
        (width, size), adaptive = ctrl.point, ctrl.adaptive
        updates: dict[str, Any] = {}
        if not math.isclose(self._value("width"), width):
            updates["width"] = float(width)
        if [int(v) for v in self._value("resolution")] != list(size):
            updates["resolution"] = [int(size[0]), int(size[1])]
        if self._value("adaptive") != adaptive:
            updates["adaptive"] = adaptive
        if updates:
            self._set_internal(updates)

    # -- engines ---------------------------------------------------------------------------

    def _log_build(self, text: str) -> None:
        """The runtime's progress lines; once the node is closing, a cancellation point."""
        with self._state_lock:
            if self._closing:
                raise _Cancelled
            self.get_logger().info(text)

    @contextlib.contextmanager
    def _uninterruptible(self) -> Iterator[None]:
        """Marks engine work (build and adoption) that a stop cannot wait for."""
        with self._state_lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._state_lock:
                self._busy -= 1

    def _build_engine(self, settings: Settings) -> PointEngine:
        """Load and warm every point (seconds to minutes); safe in any thread. Call within
        :meth:`_uninterruptible`, together with :meth:`_adopt_engine`.

        Raises:
            StartupError: the model or a backend cannot be used.
            _Cancelled: the node closed meanwhile.
        """
        try:
            sizes = settings.input_sizes or (
                [settings.input_size] if settings.input_size else None)
            return load_point_engine(settings.model_path, input_sizes=sizes,
                                     backend=settings.backend, device=settings.device,
                                     precision=settings.precision,
                                     cache_dir=settings.cache_dir, log=self._log_build)
        except _Cancelled:
            raise
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot load the model: {exc}") from None

    def _adopt_engine(self, engine: SegmentationEngine | PointEngine) -> None:
        """Make ``engine`` the one in use and start a controller on the parameters' values.

        Raises:
            StartupError: the parameters do not suit this engine (checked again: they may have
                changed while it was built).
            _Cancelled: the node is closing.
        """
        with self._state_lock:
            if self._closing:
                raise _Cancelled
            if isinstance(engine, SegmentationEngine):  # given ready: one size
                engine = PointEngine.single(engine)
            values = {name: self._value(name) for name in P.CONTROLLER_PARAMETERS}
            settings = self.settings
            latency_table = settings.latency_table if settings is not None else None
            model_path = (settings.model_path if settings is not None
                          and settings.model_path is not None else engine.model_path)
            try:
                setup = make_point_controller(engine, P.controller_config(values),
                                              latency_table, model_path)
                controller = setup.controller
                if not self._value("adaptive"):
                    size = P.check_resolution(self._value("resolution"), list(engine.sizes))
                    if self._pins_before_ready != {"resolution"}:
                        controller.pin(self._value("width"))
                    if size is not None:
                        controller.pin_size(size)
                self._pins_before_ready = set()
            except ValueError as exc:
                raise StartupError(str(exc)) from None
            for warning in setup.warnings:
                self.get_logger().warning(warning)
            self.get_logger().info(f"operating points: latency from {setup.latency_source}, "
                                   f"accuracy from {setup.accuracy_source}")
            self._latency_source, self._accuracy_source = (setup.latency_source,
                                                           setup.accuracy_source)
            best = max(controller.points, key=lambda p: (p.accuracy, -p.cost))
            self._reference = best.key
            self._agreement = AgreementMonitor(period_s=float(self._value("agreement_period_s")))
            self._agreement_value = None
            self.engine, self.controller = engine, controller
            self._palette = palette_lut(engine.meta.palette)
            self._publish_color = bool(self._value("publish_color"))
            self._publish_overlay = bool(self._value("publish_overlay"))
            self._overlay_alpha = float(self._value("overlay_alpha"))
            self._max_pixels = int(self._value("max_image_pixels"))
            self.get_logger().info(
                f"ready: {engine.backend} on {engine.device} ({engine.precision}), widths "
                f"{format_widths(engine.widths)}, network input "
                f"{', '.join(format_size(z) for z in engine.sizes)}, width {controller.width:g} "
                + (f"at {format_size(controller.size)} " if len(engine.sizes) > 1 else "")
                + f"({'adaptive' if controller.adaptive else 'pinned'})")

    def _release_engine(self) -> None:
        with self._state_lock:
            engine, self.engine, self.controller = self.engine, None, None
        if engine is not None:
            engine.close()

    # -- outputs ---------------------------------------------------------------------------

    def _make_publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        return self.create_publisher(msg_type, topic, qos)

    def _drop_publisher(self, publisher: Any) -> None:
        self.destroy_publisher(publisher)

    def _open_outputs(self) -> None:
        with self._publish_lock:
            self._outputs = {
                "labels": self._make_publisher(Image, "labels", output_qos()),
                "labels_color": self._make_publisher(Image, "labels_color", output_qos()),
                "overlay": self._make_publisher(Image, "overlay", output_qos()),
                "width": self._make_publisher(Float32, "~/width", latched_qos()),
                "operating_point": self._make_publisher(String, "~/operating_point",
                                                        latched_qos()),
                "agreement": self._make_publisher(Float32, "~/agreement", 10),
                "diagnostics": self._make_publisher(DiagnosticArray, "/diagnostics", 10),
            }
            self._outputs_open = True
            self._announced = None
            self._announced_point = None
        self._diag_timer = self.create_timer(_DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

    def _close_outputs(self) -> None:
        with self._publish_lock:
            self._outputs_open = False
            publishers, self._outputs = self._outputs, {}
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for publisher in publishers.values():
            self._drop_publisher(publisher)

    def _announce(self, width: float, reason: str, size: tuple[int, int] | None = None) -> None:
        """Publish ``~/width`` and ``~/operating_point`` and log, once per change (callbacks
        and the worker both call it)."""
        ctrl = self.controller
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
            with self._publish_lock:
                if self._outputs_open:
                    if width_changed:
                        self._outputs["width"].publish(Float32(data=float(width)))
                    if point_changed and ctrl is not None:
                        status = ctrl.status(time.monotonic())
                        self._outputs["operating_point"].publish(String(
                            data=operating_point_json(width, size, status.adaptive,
                                                      pinned_words(status), reason)))
        if self._closing:
            return
        if width_changed and (ctrl is None or len(ctrl.sizes) == 1):
            self.get_logger().info(f"width {width:g}: {reason}")
        else:
            self.get_logger().info(f"operating point {width:g}@{format_size(size)}: {reason}")

    # -- input -----------------------------------------------------------------------------

    def _resolve(self, name: str, only_expand: bool = False) -> str:
        return self.resolve_topic_name(name, only_expand=only_expand)

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

    def _open_inputs(self) -> None:
        self._transport = self._value("input_transport")
        self._reliability_mode = self._value("input_reliability")
        self._update_input_subscription(force=True)
        self._qos_timer = self.create_timer(_QOS_CHECK_PERIOD_S, self._update_input_subscription)
        self._battery_sub = self.create_subscription(BatteryState, "battery_state",
                                                     self._on_battery, battery_qos())

    def _close_inputs(self) -> None:
        for entity, destroy in ((self._qos_timer, self.destroy_timer),
                                (self._sub, self.destroy_subscription),
                                (self._battery_sub, self.destroy_subscription)):
            if entity is not None:
                destroy(entity)
        self._qos_timer = self._sub = self._battery_sub = None
        self._sub_key = None
        self._input_reason = "not subscribed"

    @_guarded
    def _update_input_subscription(self, force: bool = False) -> None:
        topic = self.input_topic()
        compressed = self._transport == "compressed"
        try:
            infos = self.get_publishers_info_by_topic(topic)
        except Exception:  # noqa: BLE001 - a graph query must not stop the timer
            infos = []
        now = time.monotonic()
        current = self._sub_key[2] if self._sub_key and self._sub_key[0] == topic else None
        publishers = [(bytes(i.endpoint_gid), i.qos_profile.reliability) for i in infos]
        for gone in set(self._heard) - set(dict(publishers)):
            self._loss.forget_publisher(gone)
        self._heard = {k: t for k, t in self._heard.items() if k in dict(publishers)}
        reliability, why = self._qos.choose(self._reliability_mode, publishers, now, current,
                                            self._subscribed_at, dict(self._heard))
        key = (topic, compressed, reliability)
        reason = f"{reliability_name(reliability)} ({why})"
        if not force and key == self._sub_key:
            self._input_reason = reason  # same QoS, but the publishers may have changed
            return
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        msg_type = CompressedImage if compressed else Image
        self._sub, lost_event = self._subscribe_images(msg_type, topic, input_qos(reliability))
        self._loss.new_subscription(lost_event)
        self._sub_key = key
        self._subscribed_at = now
        self._input_reason = reason
        self.get_logger().info(
            f"subscribed to {topic} ({msg_type.__name__}), {self._input_reason}")

    def _subscribe_images(self, msg_type: type, topic: str, qos: Any) -> tuple[Any, bool]:
        """The image subscription, with the DDS message-lost event where the RMW offers it
        (frames lost in transport never reach the callback: docs/transport.md)."""
        events = SubscriptionEventCallbacks(
            message_lost=lambda info: self._loss.on_lost_event(info.total_count_change))
        try:
            return self.create_subscription(msg_type, topic, self._on_image, qos,
                                            event_callbacks=events), True
        except UnsupportedEventTypeError:
            return self.create_subscription(msg_type, topic, self._on_image, qos), False

    def _on_image(self, msg: Image | CompressedImage, info: Any) -> None:
        now = time.monotonic()
        gid = info.get("publisher_gid") if info else None
        publisher = bytes(gid["data"]) if gid else None
        if publisher is not None:  # which camera delivers (input QoS choice)
            self._heard[publisher] = now
        self._loss.on_message(publisher, info.get("publication_sequence_number") if info else None)
        if not self._serving:
            self.stats.count_not_ready()  # counted, never kept: it would be stale when ready
            return
        self._slot.put(Frame(msg, isinstance(msg, CompressedImage), now))
        ctrl = self.controller
        if ctrl is not None:
            ctrl.observe_input(now)

    @_guarded
    def _on_battery(self, msg: BatteryState) -> None:
        ctrl = self.controller
        if ctrl is None:
            return
        now = time.monotonic()
        warning = ctrl.observe_battery(now, msg.percentage, msg.power_supply_status)
        if warning:
            self.get_logger().warning(warning, throttle_duration_sec=_THROTTLE_S)
        decision = ctrl.decide(now)
        if decision.changed:
            self._announce(decision.width, decision.reason, decision.size)
            self._sync_guard.trigger()

    # -- the worker ------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start answering frames with the adopted engine; announce the width in use."""
        ctrl = self.controller
        assert ctrl is not None and self.engine is not None
        self._slot.reopen()
        self._worker = threading.Thread(target=self._work, name="slimseg-worker", daemon=True)
        self._serving = True
        self._worker.start()
        self._announce(ctrl.width, ctrl.status(time.monotonic()).reason, ctrl.size)
        self._sync_guard.trigger()

    def _stop_worker(self) -> None:
        self._serving = False
        self._slot.close()
        worker = self._worker
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(_WORKER_JOIN_S)

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
                if not self._closing:
                    self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}",
                                            throttle_duration_sec=_THROTTLE_S)

    def _to_rgb(self, frame: Frame, notes: list[str]) -> Any:
        msg = frame.msg
        if frame.compressed:
            return compressed_to_rgb(msg.format, msg.data, self._max_pixels, notes=notes)
        return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian), self._max_pixels)

    def _process(self, frame: Frame) -> None:
        started = time.monotonic()
        engine, ctrl = self.engine, self.controller
        if engine is None or ctrl is None:
            return
        notes: list[str] = []
        try:
            rgb = self._to_rgb(frame, notes)
        except ImageRejected as exc:
            said = f" (decoder: {'; '.join(notes)})" if notes else ""
            self.stats.reject(exc.kind, f"{exc}{said}")
            self.get_logger().warning(f"image rejected: {exc}{said}",
                                      throttle_duration_sec=_THROTTLE_S)
            return
        if notes:  # decoded, with complaints (libpng/libjpeg), through the throttled log
            self.get_logger().warning(f"image decoder: {'; '.join(notes)}",
                                      throttle_duration_sec=_THROTTLE_S)
        decision = ctrl.decide(started)
        if decision.changed:
            self._announce(decision.width, decision.reason, decision.size)
            self._sync_guard.trigger()
        t0 = time.perf_counter()
        labels = engine.infer(rgb, decision.width, decision.size)
        inference_s = time.perf_counter() - t0

        header = frame.msg.header
        with self._publish_lock:
            if not self._outputs_open:
                return
            pubs = self._outputs
            out = Image()
            out.header = header
            pubs["labels"].publish(fill_image(out, labels, "mono8"))
            want_color = (self._publish_color
                          and pubs["labels_color"].get_subscription_count() > 0)
            want_overlay = (self._publish_overlay
                            and pubs["overlay"].get_subscription_count() > 0)
            if want_color or want_overlay:
                color = self._palette[labels]
                if want_color:
                    out = Image()
                    out.header = header
                    pubs["labels_color"].publish(fill_image(out, color, "rgb8"))
                if want_overlay:
                    out = Image()
                    out.header = header
                    mixed = blend(rgb, color, self._overlay_alpha)
                    pubs["overlay"].publish(fill_image(out, mixed, "rgb8"))

        done = time.monotonic()
        ctrl.observe_frame(done, decision.width, done - started, decision.size)
        self.stats.answered(done, done - frame.received, inference_s)
        observer = self.frame_observer
        if observer is not None:
            observer(FrameTiming(stamp_ns(header), frame.received, started, inference_s, done,
                                 decision.width, labels.shape[:2], decision.size))
        self._check_agreement(engine, ctrl, rgb, labels, (decision.width, decision.size),
                              frame.received)

    def _check_agreement(self, engine: PointEngine, ctrl: PointController, rgb: Any,
                         labels: Any, point: tuple[float, tuple[int, int]],
                         received: float) -> None:
        """In idle time only, run the most accurate point on this frame and publish how far
        the point in use agrees with it (no frame waits: the run must fit before the next
        frame is due, and none may be waiting)."""
        ref = self._reference
        now = time.monotonic()
        # cheap tests first: this runs after every frame, a check every agreement_period_s
        if ref is None or point == ref or not self._agreement.period_passed(now):
            return
        budget_s, reference_s = ctrl.forecast(ref, now)
        if not self._agreement.due(now, received + budget_s - now, reference_s) \
                or self._slot.pending:
            return
        reference = engine.infer(rgb, ref[0], ref[1])
        value = label_agreement(labels, reference, len(engine.meta.class_names))
        self._agreement_value = value
        with self._publish_lock:
            if self._outputs_open:
                self._outputs["agreement"].publish(Float32(data=float(value)))
        said = self._agreement.record(time.monotonic(), point, value)
        if said and not self._closing:
            self.get_logger().warning(said)

    # -- diagnostics -----------------------------------------------------------------------

    def _state_text(self) -> str:
        return "running" if self._serving else self._phase

    def diagnostics_view(self) -> DiagnosticsView:
        """A snapshot of everything ``/diagnostics`` shows."""
        now = time.monotonic()
        loss = self._loss.summary(now)
        s = self.stats
        with s.lock:
            processed, rejected, failed = s.processed, s.rejected, s.failed
            by_kind, last_rejection = dict(s.rejected_by_kind), s.last_rejection
            not_ready = s.not_ready
            output_fps = s.output_rate.rate(now)
        engine, ctrl, settings = self.engine, self.controller, self.settings
        if ctrl is not None:
            status = ctrl.status(now)
            width, adaptive, input_fps, battery = (status.width, status.adaptive,
                                                   status.input_fps, status.battery)
            reason, switches, budget_ms = status.reason, status.switches, status.budget_s * 1e3
            point = {"operating_point": f"{status.width:g}@{format_size(status.size)}",
                     "pinned": ", ".join(pinned_words(status)) or "none",
                     "front": front_text(status.front),
                     "latency_source": self._latency_source,
                     "accuracy_source": self._accuracy_source,
                     "cost_cap_gflops": ("none" if status.cost_cap_gflops is None
                                         else f"{status.cost_cap_gflops:.3f}"),
                     "agreement": ("nan" if self._agreement_value is None
                                   else f"{self._agreement_value:.3f}"),
                     "agreement_reference": ("" if self._reference is None else
                                             f"{self._reference[0]:g}@"
                                             f"{format_size(self._reference[1])}")}
        else:
            width, adaptive = float(self._value("width")), bool(self._value("adaptive"))
            input_fps, battery, reason, switches, budget_ms = None, "", "", 0, float("nan")
            point = {}
        if engine is not None:
            backend, device, precision = engine.backend, engine.device, engine.precision
            size = tuple(status.size) if ctrl is not None else tuple(engine.input_size)
        else:
            backend, device = self._value("backend"), self._value("device")
            precision = self._value("precision")
            size = tuple(settings.input_size or settings.meta.input_size) if settings else (0, 0)
        model = str(settings.model_path) if settings and settings.model_path else (
            str(engine.model_path) if engine is not None else "")
        return DiagnosticsView(
            width=width, adaptive=adaptive, backend=backend, device=device, precision=precision,
            input_fps=input_fps, output_fps=output_fps, latency_ms=s.latency.percentiles_ms(50, 95),
            inference_ms=s.inference.percentiles_ms(50, 95),
            received=self._slot.put_count + not_ready, processed=processed,
            dropped=self._slot.dropped + not_ready, rejected=rejected,
            rejected_by_kind=by_kind, last_rejection=last_rejection, failed=failed,
            battery=battery, reason=reason, switches=switches, budget_ms=budget_ms,
            input_topic=self.input_topic(), input_reliability=self._input_reason, model=model,
            input_size=size,  # type: ignore[arg-type]
            rejected_recently=rejected - self._rejected_at_last_status,
            state=self._state_text(), point=point, input_loss=loss,
            loss_warning=loss_warning(loss, self._profile_hint))

    @_guarded
    def _publish_diagnostics(self) -> None:
        view = self.diagnostics_view()
        self._rejected_at_last_status = view.rejected
        level, message, pairs = diagnostic_status(view)
        if view.loss_warning and view.state == "running":
            self.get_logger().warning(view.loss_warning, throttle_duration_sec=_LOSS_LOG_S)
        status = DiagnosticStatus(
            level=_LEVELS[level], name=status_name(self.get_name()), message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in pairs])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        with self._publish_lock:
            if self._outputs_open:
                self._outputs["diagnostics"].publish(array)

