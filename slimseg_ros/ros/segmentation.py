"""What the plain and the managed node share: parameters, engines, input, worker, outputs.

:class:`SlimSegCore` is a mixin for an rclpy ``Node`` (``SlimSegNode``) or a lifecycle node
(``SlimSegLifecycleNode``); it holds every code path of the node, in steps the two call in their
own order (docs/node.md, "The managed node"):

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

This module says what the node does and when; the parts it owns do one thing each:
:mod:`.params` (the parameter table), :mod:`.settings` (the one check of values, at start and on
set), :mod:`.node_parameters` (the table on the rclpy node), :mod:`.inputs` (the camera
subscription and its QoS), :mod:`.frames` (the hand-off to the worker thread), :mod:`.outputs`
(the publishers), :mod:`.agreement` (agreement with the most accurate point),
:mod:`.diagnostics` (the status), :mod:`.operating_points` (the controller's set-up).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import warnings
from typing import Any, Callable, Iterator

from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Float32

from ..control import PointController
from ..data.pixels import ImageRejected
from ..data.stamps import stamp_ns
from ..runtime import PointEngine, SegmentationEngine, load_point_engine
from ..sizes import format_size
from . import params as P
from .agreement import AgreementCheck
from .conversions import palette_lut
from .diagnostics import DiagnosticsView, NodeStats, diagnostic_array, gather_view
from .frames import Frame, FrameOptions, FrameTiming, FrameWorker, LatestSlot
from .inputs import ImageInput
from .node_parameters import NodeParameters
from .operating_points import make_point_controller, pin_at_start, ready_text
from .outputs import Outputs
from .qos import battery_qos
from .settings import Settings, settle, start_up_refusal, validate

__all__ = ["FrameTiming", "Settings", "SlimSegCore", "StartupError"]

# A zero-copy rgb8 view is read-only; torch warns once about it and only reads it.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

_THROTTLE_S = 5.0
_DIAGNOSTICS_PERIOD_S = 1.0
_WORKER_JOIN_S = 1.5
_LOSS_LOG_S = 10.0


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Log what a callback raises instead of letting it stop the executor (never die)."""
    @functools.wraps(method)
    def wrapper(self: SlimSegCore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._report_failure(method.__name__, exc)
            return None
    return wrapper


class StartupError(RuntimeError):
    """The node cannot start (or configure) with these parameters; the message says why in
    one line."""


class _Cancelled(Exception):
    """The node closed while its engines were being built."""


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
        self.settings: Settings | None = None
        self.stats = NodeStats()
        self._latency_source = self._accuracy_source = ""
        self._agreement = AgreementCheck()
        self._phase = "starting"
        self._closing = False
        self._serving = False
        self._state_lock = threading.RLock()
        self._params = NodeParameters(self, self.managed)  # type: ignore[arg-type]
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._worker = FrameWorker(self._slot, self._process, self._frame_failed)
        self._busy = 0  # engine builds in progress (cannot be interrupted)
        self._outputs = Outputs()
        self._diag_timer: Any = None
        self._input = ImageInput(self, self._on_frame,  # type: ignore[arg-type]
                                 self._report_failure)
        self._battery_sub: Any = None
        self._rejected_at_last_status = 0
        self._options = FrameOptions.of({s.name: s.default for s in P.NODE_PARAMETERS})
        self._palette = palette_lut([])
        self._pin_pending = False
        self._pins_before_ready: set[str] = set()
        """What an operator pinned before the engines existed (applied when they are)."""
        self._sync_guard = self.create_guard_condition(self._sync_parameters)
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
        if profile:  # large frames cross only with the right transport settings: say which
            self.get_logger().info(f"Fast DDS profile {profile}")

    def _report_failure(self, what: str, exc: Exception) -> None:
        """A callback failed: one throttled line (none once closing), the node goes on."""
        if not self._closing:
            self.get_logger().error(f"{what} failed: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=_THROTTLE_S)

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
        self._outputs.stop()
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
        try:
            self._params.declare(self._on_set_parameters)
        except ValueError as exc:
            raise StartupError(str(exc)) from None

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        """What the parameter services call (``ros2 param set``, ``ros2 param load``): unknown
        names and types are answered in words, integers are taken for doubles."""
        fixed = self._params.coerce(parameter_list)
        if isinstance(fixed, str):
            return SetParametersResult(successful=False, reason=fixed)
        return super().set_parameters_atomically(fixed)  # type: ignore[misc]

    def _read_settings(self) -> Settings:
        """Check the parameters and read the checkpoint's header; set ``widths`` and
        ``class_names`` from it.

        Raises:
            StartupError: one line: what is wrong and what is allowed.
        """
        given = self.engine if self.settings is None else None  # given ready (tests, benches)
        try:
            settings = settle(self._params.values(), given)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        with self._state_lock:
            self.settings = settings
            self._params.show({"class_names": [str(n) for n in settings.meta.class_names],
                               "widths": [float(w) for w in settings.widths]})
        return settings

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check every value first, then apply them all (nothing changes on a rejection)."""
        if self._params.setting_internally:
            return SetParametersResult(successful=True)
        try:
            with self._state_lock:
                return self._apply_parameters({p.name: p.value for p in parameters})
        except Exception as exc:  # noqa: BLE001 - a parameter must never stop the node
            self.get_logger().error(f"setting parameters failed: {type(exc).__name__}: {exc}")
            return SetParametersResult(successful=False,
                                       reason=f"internal error: {type(exc).__name__}: {exc}")

    def _apply_parameters(self, values: dict[str, Any]) -> SetParametersResult:
        refusal = start_up_refusal(values, self._phase == "unconfigured",
                                   self.get_fully_qualified_name())
        if refusal:
            return SetParametersResult(successful=False, reason=refusal)
        # Unconfigured, the next configure checks everything against the model it loads.
        model = self.settings if self._phase != "unconfigured" else None
        try:
            checked = validate(values, model, self._params.values())
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))

        self._options = self._options.updated(values)
        if "agreement_period_s" in values:
            self._agreement.set_period(float(values["agreement_period_s"]))
        self._input.set_mode(values.get("input_transport", self._input.transport),
                             values.get("input_reliability", self._input.reliability_mode))
        ctrl = self.controller
        if ctrl is not None:
            if any(name in P.CONTROLLER_PARAMETERS for name in values):
                ctrl.set_config(checked.config)
            if checked.width_pin is not None:
                decision = ctrl.pin(checked.width_pin)
                self._announce(decision.width, decision.reason, decision.size)
            if "resolution" in values:
                decision = ctrl.pin_size(checked.size_pin)
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
                "resolution" in values and checked.size_pin is not None)):
            self._pin_pending = True  # pinned before the engines exist: adaptive goes false
            self._pins_before_ready.add("width" if "width" in values else "resolution")
        # The parameters that mirror the controller are brought in line once this set is stored.
        self._sync_guard.trigger()
        return SetParametersResult(successful=True)

    @_guarded
    def _sync_parameters(self) -> None:
        """Make the ``width``/``resolution``/``adaptive`` parameters show the controller's
        state."""
        ctrl = self.controller
        if ctrl is None:
            if self._pin_pending:
                self._pin_pending = False
                self._params.set_internal({"adaptive": False})
            return
        (width, size), adaptive = ctrl.point, ctrl.adaptive
        self._params.mirror({"width": float(width), "resolution": [int(size[0]), int(size[1])],
                             "adaptive": adaptive})

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
            values = {name: self._params.value(name) for name in P.CONTROLLER_PARAMETERS}
            settings = self.settings
            latency_table = settings.latency_table if settings is not None else None
            model_path = (settings.model_path if settings is not None
                          and settings.model_path is not None else engine.model_path)
            try:
                setup = make_point_controller(engine, P.controller_config(values),
                                              latency_table, model_path)
                controller = setup.controller
                pin_at_start(controller, engine, {name: self._params.value(name) for name in
                                                  ("adaptive", "resolution", "width")},
                             self._pins_before_ready)
                self._pins_before_ready = set()
            except ValueError as exc:
                raise StartupError(str(exc)) from None
            for warning in setup.warnings:
                self.get_logger().warning(warning)
            self.get_logger().info(f"operating points: latency from {setup.latency_source}, "
                                   f"accuracy from {setup.accuracy_source}")
            self._latency_source, self._accuracy_source = (setup.latency_source,
                                                           setup.accuracy_source)
            self._agreement.reset(controller, float(self._params.value("agreement_period_s")))
            self.engine, self.controller = engine, controller
            self._palette = palette_lut(engine.meta.palette)
            self._options = FrameOptions.of(self._params.values())
            self.get_logger().info(ready_text(engine, controller))

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
        self._outputs.open(self._make_publisher)
        self._diag_timer = self.create_timer(_DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

    def _close_outputs(self) -> None:
        self._outputs.stop()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._outputs.close(self._drop_publisher)

    def _announce(self, width: float, reason: str, size: tuple[int, int] | None = None) -> None:
        """Publish ``~/width`` and ``~/operating_point`` and log, once per change (callbacks
        and the worker both call it)."""
        self._outputs.announce(width, reason, size, self.controller,
                               None if self._closing else self.get_logger().info)

    # -- input -----------------------------------------------------------------------------

    def input_topic(self) -> str:
        """The fully qualified topic the node reads images from."""
        return self._input.topic()

    def _open_inputs(self) -> None:
        self._input.open(self._params.value("input_transport"),
                         self._params.value("input_reliability"))
        self._battery_sub = self.create_subscription(BatteryState, "battery_state",
                                                     self._on_battery, battery_qos())

    def _close_inputs(self) -> None:
        self._input.close()
        if self._battery_sub is not None:
            self.destroy_subscription(self._battery_sub)
            self._battery_sub = None

    def _on_frame(self, frame: Frame) -> None:
        if not self._serving:
            self.stats.count_not_ready()  # counted, never kept: it would be stale when ready
            return
        self._slot.put(frame)
        ctrl = self.controller
        if ctrl is not None:
            ctrl.observe_input(frame.received)

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
        self._worker.start()
        self._serving = True
        self._announce(ctrl.width, ctrl.status(time.monotonic()).reason, ctrl.size)
        self._sync_guard.trigger()

    def _stop_worker(self) -> None:
        self._serving = False
        self._worker.stop(_WORKER_JOIN_S)

    def _frame_failed(self, exc: Exception) -> None:
        with self.stats.lock:
            self.stats.failed += 1
        if not self._closing:
            self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=_THROTTLE_S)

    def _process(self, frame: Frame) -> None:
        started = time.monotonic()
        engine, ctrl = self.engine, self.controller
        if engine is None or ctrl is None:
            return
        options = self._options
        notes: list[str] = []
        try:
            rgb = frame.to_rgb(options.max_pixels, notes)
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
        if not self._outputs.publish_labels(header, labels, rgb, self._palette, options):
            return  # closed meanwhile
        done = time.monotonic()
        ctrl.observe_frame(done, decision.width, done - started, decision.size)
        self.stats.answered(done, done - frame.received, inference_s)
        observer = self.frame_observer
        if observer is not None:
            observer(FrameTiming(stamp_ns(header), frame.received, started, inference_s, done,
                                 decision.width, labels.shape[:2], decision.size))
        measured = self._agreement.measure(engine, ctrl, rgb, labels,
                                           (decision.width, decision.size), frame.received,
                                           lambda: self._slot.pending)
        if measured is not None:  # measured in idle time: no frame waited for it
            value, said = measured
            self._outputs.publish("agreement", Float32(data=float(value)))
            if said and not self._closing:
                self.get_logger().warning(said)

    # -- diagnostics -----------------------------------------------------------------------

    def diagnostics_view(self) -> DiagnosticsView:
        """A snapshot of everything ``/diagnostics`` shows."""
        return gather_view(
            time.monotonic(), stats=self.stats, slot=self._slot, engine=self.engine,
            controller=self.controller, settings=self.settings, parameter=self._params.value,
            inputs=self._input, point_sources=(self._latency_source, self._accuracy_source),
            agreement=self._agreement, state="running" if self._serving else self._phase,
            rejected_before=self._rejected_at_last_status)

    @_guarded
    def _publish_diagnostics(self) -> None:
        view = self.diagnostics_view()
        self._rejected_at_last_status = view.rejected
        if view.loss_warning and view.state == "running":
            self.get_logger().warning(view.loss_warning, throttle_duration_sec=_LOSS_LOG_S)
        self._outputs.publish("diagnostics", diagnostic_array(
            view, self.get_name(), self.get_fully_qualified_name(),
            self.get_clock().now().to_msg()))
