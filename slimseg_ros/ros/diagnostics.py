"""The node's counters and latency window, and their ``/diagnostics`` message.

``diagnostic_updater`` is not installable everywhere the node runs, so the node fills a
``diagnostic_msgs/DiagnosticArray`` itself: one ``DiagnosticStatus`` named ``<node>: segmentation``
with the keys docs/node.md lists (:data:`DIAGNOSTIC_KEYS`) plus a few more.
:func:`gather_view` reads the node's state into a :class:`DiagnosticsView`;
:func:`diagnostic_status` turns that into the status's level, message and key-value pairs.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..control import RateMeter
from ..runtime.timing import percentile_ms
from ..sizes import format_size
from .input_loss import InputLoss
from .operating_points import front_text, pinned_words

if TYPE_CHECKING:  # types only: this module needs none of them at run time
    from ..control import PointController
    from ..runtime import PointEngine
    from .agreement import AgreementCheck
    from .frames import LatestSlot
    from .inputs import ImageInput
    from .settings import Settings

__all__ = ["DIAGNOSTIC_KEYS", "DIAGNOSTIC_POINT_KEYS", "LatencyWindow", "NodeStats",
           "DiagnosticsView", "diagnostic_array", "diagnostic_status", "gather_view",
           "status_name", "status_values"]

DIAGNOSTIC_KEYS: tuple[str, ...] = (
    "width", "adaptive", "backend", "device", "precision", "input_fps", "output_fps",
    "latency_p50_ms", "latency_p95_ms", "dropped_frames", "rejected_frames", "battery",
    "last_switch_reason",
)
"""Keys every status carries (docs/node.md); more follow them."""

DIAGNOSTIC_POINT_KEYS: tuple[str, ...] = (
    "operating_point", "pinned", "front", "latency_source", "accuracy_source",
    "cost_cap_gflops", "agreement", "agreement_reference",
)
"""The operating point in use and why (issue 13); present once the engines are ready."""


def status_name(node_name: str) -> str:
    """The name of a node's status: ``slimseg: segmentation`` for ``/slimseg`` (or ``slimseg``)."""
    return f"{node_name.rstrip('/').rsplit('/', 1)[-1]}: segmentation"


def status_values(array: Any, node_fqn: str) -> dict[str, str] | None:
    """The key-value pairs of ``node_fqn``'s status in a ``DiagnosticArray``, None if absent.

    The one way to read the node's diagnostics from outside: the status named by
    :func:`status_name` whose hardware id is the node's fully qualified name.
    """
    fqn = "/" + node_fqn.strip("/")
    for status in array.status:
        if status.name == status_name(fqn) and status.hardware_id in ("", fqn):
            return {kv.key: kv.value for kv in status.values}
    return None


class LatencyWindow:
    """The last ``size`` samples (seconds) and their percentiles. Thread-safe."""

    def __init__(self, size: int = 300) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def percentiles_ms(self, *qs: float) -> tuple[float | None, ...]:
        """Percentiles in milliseconds, None each while there are no samples."""
        with self._lock:
            samples = list(self._samples)
        return tuple(percentile_ms(samples, q) for q in qs)


@dataclass
class NodeStats:
    """Counters shared by the callbacks and the worker (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    processed: int = 0
    """Frames answered with labels."""
    rejected: int = 0
    """Messages that were not a usable image."""
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    last_rejection: str = ""
    failed: int = 0
    """Frames the engine failed on (never expected; counted rather than fatal)."""
    not_ready: int = 0
    """Frames that arrived while the engines were not ready (counted as dropped, not kept)."""
    output_rate: RateMeter = field(default_factory=RateMeter)
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    """Arrival in the callback -> labels published, seconds."""
    inference: LatencyWindow = field(default_factory=LatencyWindow)
    """Time inside the runtime's ``infer``, seconds."""

    def reject(self, kind: str, reason: str) -> None:
        with self.lock:
            self.rejected += 1
            self.rejected_by_kind[kind] = self.rejected_by_kind.get(kind, 0) + 1
            self.last_rejection = reason

    def count_not_ready(self) -> None:
        with self.lock:
            self.not_ready += 1

    def answered(self, now: float, latency_s: float, inference_s: float) -> None:
        with self.lock:
            self.processed += 1
            self.output_rate.tick(now)
        self.latency.add(latency_s)
        self.inference.add(inference_s)


@dataclass(frozen=True)
class DiagnosticsView:
    """Everything one status message shows, gathered by the node."""

    width: float
    adaptive: bool
    backend: str
    device: str
    precision: str
    input_fps: float | None
    output_fps: float | None
    latency_ms: tuple[float | None, float | None]
    inference_ms: tuple[float | None, float | None]
    received: int
    processed: int
    dropped: int
    rejected: int
    rejected_by_kind: dict[str, int]
    last_rejection: str
    failed: int
    battery: str
    reason: str
    switches: int
    budget_ms: float
    input_topic: str
    input_reliability: str
    model: str
    input_size: tuple[int, int]
    rejected_recently: int = 0
    """Rejections since the previous status (decides the WARN level)."""
    state: str = "running"
    """``running``, or what the node is doing instead (``starting: ...``, ``inactive``)."""
    point: dict[str, str] = field(default_factory=dict)
    """The operating point's keys (DIAGNOSTIC_POINT_KEYS) once a controller runs."""
    input_loss: InputLoss | None = None
    """Frames lost before the node saw them (input_loss.py)."""
    loss_warning: str | None = None
    """Set while that loss is large: the WARN message, naming the fix."""


def _num(value: float | None, digits: int = 2) -> str:
    return "nan" if value is None else f"{value:.{digits}f}"


def _loss_pairs(loss: InputLoss | None) -> list[tuple[str, str]]:
    if loss is None:
        return []
    fraction = loss.recent_fraction
    return [("lost_frames", str(loss.lost)),
            ("lost_in_transport_frames", str(loss.lost_in_transport)),
            ("lost_fraction_recent", _num(fraction, 3)),
            ("loss_signal", loss.source)]


def diagnostic_status(view: DiagnosticsView) -> tuple[str, str, list[tuple[str, str]]]:
    """(level name ``OK``/``WARN``, message, key-value pairs) for one status."""
    pairs = [
        ("width", f"{view.width:g}"),
        ("adaptive", str(view.adaptive).lower()),
        ("backend", view.backend),
        ("device", view.device),
        ("precision", view.precision),
        ("input_fps", _num(view.input_fps)),
        ("output_fps", _num(view.output_fps)),
        ("latency_p50_ms", _num(view.latency_ms[0])),
        ("latency_p95_ms", _num(view.latency_ms[1])),
        ("dropped_frames", str(view.dropped)),
        ("rejected_frames", str(view.rejected)),
        ("battery", view.battery),
        ("last_switch_reason", view.reason),
        ("inference_p50_ms", _num(view.inference_ms[0])),
        ("inference_p95_ms", _num(view.inference_ms[1])),
        ("received_frames", str(view.received)),
        ("processed_frames", str(view.processed)),
        ("failed_frames", str(view.failed)),
        ("rejected_by_kind",
         ", ".join(f"{k}: {n}" for k, n in sorted(view.rejected_by_kind.items()))),
        ("last_rejection", view.last_rejection),
        ("switches", str(view.switches)),
        ("budget_ms", _num(view.budget_ms, 1)),
        ("input_topic", view.input_topic),
        ("input_reliability", view.input_reliability),
        ("model", view.model),
        ("input_size", format_size(view.input_size)),
        ("state", view.state),
        *((k, view.point[k]) for k in DIAGNOSTIC_POINT_KEYS if k in view.point),
        *_loss_pairs(view.input_loss),
    ]
    if view.state != "running":
        level, message = "OK", view.state
    elif view.loss_warning:
        level, message = "WARN", view.loss_warning
    elif view.rejected_recently:
        level = "WARN"
        message = f"{view.rejected_recently} messages rejected: {view.last_rejection}"
    elif view.received == 0:
        level = "OK"
        message = f"waiting for images on {view.input_topic}"
    else:
        level = "OK"
        message = f"width {view.width:g} ({'adaptive' if view.adaptive else 'pinned'})"
    return level, message, pairs


def gather_view(now: float, *, stats: NodeStats, slot: LatestSlot[Any],
                engine: PointEngine | None, controller: PointController | None,
                settings: Settings | None, parameter: Callable[[str], Any],
                inputs: ImageInput, point_sources: tuple[str, str], agreement: AgreementCheck,
                state: str, rejected_before: int) -> DiagnosticsView:
    """A snapshot of the node for one status.

    Args:
        slot: the frame hand-off (frames received and dropped).
        parameter: a parameter's value, by name (what is shown before a controller or an
            engine exists).
        point_sources: where the operating points' latency and accuracy came from.
        state: ``running`` or what the node does instead.
        rejected_before: the rejections counted at the previous status.
    """
    loss = inputs.loss(now)
    s = stats
    with s.lock:
        processed, rejected, failed = s.processed, s.rejected, s.failed
        by_kind, last_rejection = dict(s.rejected_by_kind), s.last_rejection
        not_ready = s.not_ready
        output_fps = s.output_rate.rate(now)
    if controller is not None:
        status = controller.status(now)
        width, adaptive, input_fps, battery = (status.width, status.adaptive,
                                               status.input_fps, status.battery)
        reason, switches, budget_ms = status.reason, status.switches, status.budget_s * 1e3
        point = {"operating_point": f"{status.width:g}@{format_size(status.size)}",
                 "pinned": ", ".join(pinned_words(status)) or "none",
                 "front": front_text(status.front),
                 "latency_source": point_sources[0],
                 "accuracy_source": point_sources[1],
                 "cost_cap_gflops": ("none" if status.cost_cap_gflops is None
                                     else f"{status.cost_cap_gflops:.3f}"),
                 **agreement.diagnostic_values()}
    else:
        width, adaptive = float(parameter("width")), bool(parameter("adaptive"))
        input_fps, battery, reason, switches, budget_ms = None, "", "", 0, float("nan")
        point = {}
    if engine is not None:
        backend, device, precision = engine.backend, engine.device, engine.precision
        size = tuple(status.size) if controller is not None else tuple(engine.input_size)
    else:
        backend, device, precision = (parameter("backend"), parameter("device"),
                                      parameter("precision"))
        size = tuple(settings.input_size or settings.meta.input_size) if settings else (0, 0)
    model = str(settings.model_path) if settings and settings.model_path else (
        str(engine.model_path) if engine is not None else "")
    return DiagnosticsView(
        width=width, adaptive=adaptive, backend=backend, device=device, precision=precision,
        input_fps=input_fps, output_fps=output_fps, latency_ms=s.latency.percentiles_ms(50, 95),
        inference_ms=s.inference.percentiles_ms(50, 95),
        received=slot.put_count + not_ready, processed=processed,
        dropped=slot.dropped + not_ready, rejected=rejected,
        rejected_by_kind=by_kind, last_rejection=last_rejection, failed=failed,
        battery=battery, reason=reason, switches=switches, budget_ms=budget_ms,
        input_topic=inputs.topic(), input_reliability=inputs.reason, model=model,
        input_size=size,  # type: ignore[arg-type]
        rejected_recently=rejected - rejected_before,
        state=state, point=point, input_loss=loss, loss_warning=inputs.loss_warning(loss))


_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
           "ERROR": DiagnosticStatus.ERROR}


def diagnostic_array(view: DiagnosticsView, node_name: str, node_fqn: str,
                     stamp: Any) -> DiagnosticArray:
    """The ``/diagnostics`` message of one status: named by :func:`status_name`, the node's
    fully qualified name as hardware id (what :func:`status_values` looks for)."""
    level, message, pairs = diagnostic_status(view)
    status = DiagnosticStatus(
        level=_LEVELS[level], name=status_name(node_name), message=message,
        hardware_id=node_fqn, values=[KeyValue(key=k, value=v) for k, v in pairs])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
