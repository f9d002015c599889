"""The run-time width controller: battery state and frame-rate feedback to one width.

Pure Python: time and measurements are passed in, so a test drives it with a simulated clock.
``docs/node.md`` (Width) describes it as users see it; in short, every ``decide`` call picks

    clamp(min(battery cap, frame-rate choice), min_width, max_width)

where the frame-rate choice keeps the width in use until ``overrun_frames`` consecutive frames
miss the budget (then the widest narrower width predicted to fit), and steps up only after
``min_dwell_s`` of continuous headroom (then the widest wider width predicted to fit). A limit
that falls below the width in use (battery cap, ``max_width``) applies at once; limits never
raise the width except ``min_width``. The budget is ``1 / min(target_fps, input rate)`` and a
width fits if its predicted latency is at most ``budget * (1 - margin)``: its own recent average
if it ran within ``latency_memory_s``, else its start-up profile time scaled by measured over
profiled time of the width in use (the machine's load changes absolute times, not ratios). An
operator pin overrides all of it until adaptation resumes.

Thread-safe: the node may report frames, input arrivals and battery messages from different
callbacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from slimseg_ros.control.battery import POWER_SUPPLY_STATUS_UNKNOWN
from slimseg_ros.control.config import ControllerConfig
from slimseg_ros.control.limits import check_config, check_pin
from slimseg_ros.control.points import PointController, PointDecision, width_points

__all__ = ["ControllerStatus", "Decision", "WidthController", "check_config", "check_pin"]

# the one input size of a width-only controller (its value is never used: sizes only rank points)
_ONE_SIZE = (1, 1)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What ``decide`` returns."""

    width: float
    """The width to run, one of the model's widths."""
    changed: bool
    """True if this call switched the width."""
    reason: str
    """Why the width is what it is (set by the last switch or pin)."""


@dataclasses.dataclass(frozen=True)
class ControllerStatus:
    """A snapshot for diagnostics."""

    width: float
    adaptive: bool
    reason: str
    """Reason of the last switch or pin."""
    switches: int
    """Width changes since start."""
    input_fps: float | None
    """Measured input rate, None while unknown or paused."""
    budget_s: float
    """Time available per frame."""
    predicted_s: dict[float, float]
    """Predicted processing time per width."""
    battery: str
    """The battery's effect in words ("no battery reading", "charging", ...)."""
    battery_cap: float | None
    """Battery width cap now in force, None if none."""


class WidthController:
    """Chooses the width to run from battery readings and measured frame times.

    The operating-point controller (:class:`~slimseg_ros.control.points.PointController`) at
    one input size, behind a width-only interface: the rules live in one place.

    Widths in the config (``min_width``, ``max_width``, ``battery_widths``) need not be model
    widths: a cap becomes the widest model width not above it (the narrowest if none is), and
    ``min_width`` the narrowest model width not below it.

    Args:
        widths: the model's widths.
        latency_profile: start-up processing time per width, seconds; every width needs one.
            Keys may be numbers or their strings (``slimseg bench`` JSON uses "0.25").
        config: settings; defaults to ``ControllerConfig()``.
    """

    def __init__(self, widths: Iterable[float], latency_profile: Mapping[float, float],
                 config: ControllerConfig | None = None) -> None:
        ordered = tuple(sorted(set(float(w) for w in widths)))
        if not ordered:
            raise ValueError(f"widths must be positive numbers, got {ordered}")
        profile = {(float(k), _ONE_SIZE): v for k, v in latency_profile.items()}
        self._inner = PointController(width_points(ordered, _ONE_SIZE), profile, config)

    @property
    def widths(self) -> tuple[float, ...]:
        """The model's widths, ascending."""
        return self._inner.widths

    @property
    def width(self) -> float:
        """The width in use."""
        return self._inner.width

    @property
    def adaptive(self) -> bool:
        """False while an operator pin holds the width."""
        return self._inner.adaptive

    @property
    def config(self) -> ControllerConfig:
        """The settings in force."""
        return self._inner.config

    def set_config(self, config: ControllerConfig) -> None:
        """Apply new settings; the next ``decide`` enforces them.

        A width held while adaptive is off that falls outside the new [min_width, max_width]
        moves to the nearest allowed width at the next ``decide``.

        Raises:
            ValueError: no model width lies within [min_width, max_width]; nothing changes.
        """
        self._inner.set_config(config)

    def pin(self, width: float) -> Decision:
        """Hold ``width`` (an operator's choice) and stop adapting.

        Raises:
            ValueError: ``width`` is not a model width, or lies outside [min_width,
                max_width]; the message says which widths are valid and nothing changes.
        """
        return _decision(self._inner.pin(width))

    def set_adaptive(self, enabled: bool) -> None:
        """Resume adapting from the width in use, or hold it."""
        self._inner.set_adaptive(enabled)

    def observe_input(self, now: float) -> None:
        """Note that an input frame arrived at ``now`` (seconds)."""
        self._inner.observe_input(now)

    def observe_frame(self, now: float, width: float, latency_s: float) -> None:
        """Note that a frame run at ``width`` took ``latency_s`` seconds, ending at ``now``.

        Non-finite or negative times are ignored.

        Raises:
            ValueError: ``width`` is not a model width.
        """
        self._inner.observe_frame(now, width, latency_s)

    def observe_battery(self, now: float, percentage: float,
                        status: int = POWER_SUPPLY_STATUS_UNKNOWN) -> str | None:
        """Take one ``sensor_msgs/BatteryState`` reading.

        Returns:
            A warning for the log if the percentage was rejected (out of [0, 1]), else None.
        """
        return self._inner.observe_battery(now, percentage, status)

    def decide(self, now: float) -> Decision:
        """Pick the width for the next frame."""
        return _decision(self._inner.decide(now))

    def status(self, now: float) -> ControllerStatus:
        """A snapshot for diagnostics at ``now``."""
        s = self._inner.status(now)
        return ControllerStatus(
            width=s.width, adaptive=s.adaptive, reason=s.reason, switches=s.switches,
            input_fps=s.input_fps, budget_s=s.budget_s,
            predicted_s={key[0]: t for key, t in s.predicted_s.items()},
            battery=s.battery, battery_cap=s.battery_cap)


def _decision(d: PointDecision) -> Decision:
    return Decision(width=d.width, changed=d.changed, reason=d.reason)
