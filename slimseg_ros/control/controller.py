"""The run-time width controller: battery state and frame-rate feedback to one width.

Pure Python: time and measurements are passed in, so a test drives it with a simulated clock.
DESIGN.md section 9 is the contract; in short, every ``decide`` call picks

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
import math
import threading
from collections.abc import Iterable, Mapping

from slimseg_ros.control.battery import (
    POWER_SUPPLY_STATUS_FULL, POWER_SUPPLY_STATUS_UNKNOWN, BatteryReading, battery_level,
    check_reading)
from slimseg_ros.control.config import ControllerConfig
from slimseg_ros.control.rate import RateMeter
from slimseg_ros.widths import WIDTH_TOLERANCE as _TOL
from slimseg_ros.widths import format_widths, match_width

__all__ = ["ControllerStatus", "Decision", "WidthController", "check_config", "check_pin"]


def _bounds(widths: tuple[float, ...], config: ControllerConfig) -> tuple[float, float]:
    """The narrowest and widest model widths within [min_width, max_width]."""
    lo = min(w for w in widths if w >= config.min_width - _TOL)
    hi = max(w for w in widths if w <= config.max_width + _TOL)
    return lo, hi


def check_config(widths: Iterable[float], config: ControllerConfig) -> None:
    """Raise ``ValueError`` unless a model width lies in [min_width, max_width] of ``config``.

    What :meth:`WidthController.set_config` checks, usable before a controller exists (the
    node validates parameter sets while its engines are still being built).
    """
    if not isinstance(config, ControllerConfig):
        raise TypeError(f"config must be a ControllerConfig, got {type(config).__name__}")
    widths = tuple(widths)
    if not any(config.min_width - _TOL <= w <= config.max_width + _TOL for w in widths):
        raise ValueError(
            f"no model width lies in [min_width, max_width] = [{config.min_width:g}, "
            f"{config.max_width:g}]; the model's widths are {format_widths(sorted(widths))}")


def check_pin(width: float, widths: Iterable[float], config: ControllerConfig) -> float:
    """The model width an operator may pin for ``width``: one of ``widths`` and within
    [min_width, max_width] (``max_width`` means never wider, pins included).

    Raises:
        ValueError: not a model width (the message lists them), or outside the limits.
    """
    widths = tuple(sorted(widths))
    w = match_width(width, widths)
    lo, hi = _bounds(widths, config)
    if not lo <= w <= hi:
        raise ValueError(
            f"width {w:g} is outside [min_width, max_width] = [{config.min_width:g}, "
            f"{config.max_width:g}]; change min_width/max_width first, or pin one of "
            f"{format_widths(v for v in widths if lo <= v <= hi)}")
    return w


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

    Widths in the config (``min_width``, ``max_width``, ``battery_widths``) need not be model
    widths: a cap becomes the widest model width not above it (the narrowest if none is), and
    ``min_width`` the narrowest model width not below it.

    Args:
        widths: the model's widths.
        latency_profile: start-up processing time per width, seconds; every width needs one.
            Keys may be numbers or their strings (``slimseg bench`` JSON uses "0.25").
        config: settings; defaults to ``ControllerConfig()``.
    """

    def __init__(
        self,
        widths: Iterable[float],
        latency_profile: Mapping[float, float],
        config: ControllerConfig | None = None,
    ) -> None:
        self._widths = tuple(sorted(set(float(w) for w in widths)))
        if not self._widths or not all(math.isfinite(w) and w > 0 for w in self._widths):
            raise ValueError(f"widths must be positive numbers, got {self._widths}")
        self._seed = {}
        for w in self._widths:
            values = [s for k, s in latency_profile.items() if abs(float(k) - w) <= _TOL]
            if not values:
                raise ValueError(
                    f"latency_profile has no time for width {w:g}; it needs one for each of "
                    f"{format_widths(self._widths)}")
            if not (math.isfinite(values[0]) and values[0] > 0):
                raise ValueError(f"latency_profile[{w:g}] must be a positive time in seconds, "
                                 f"got {values[0]!r}")
            self._seed[w] = float(values[0])
        self._config = ControllerConfig() if config is None else config
        self._check_config(self._config)

        self._lock = threading.Lock()
        self._now: float | None = None  # latest time seen, to notice a clock that goes back
        self._ema = dict(self._seed)
        self._measured_at: dict[float, float | None] = dict.fromkeys(self._widths)
        self._input_rate = RateMeter()
        self._battery: BatteryReading | None = None
        self._battery_level = 0
        self._adaptive = True
        self._overruns = 0
        self._headroom_since: float | None = None
        self._switches = 0

        lo, hi = self._bounds()
        budget = 1.0 / self._config.target_fps
        target = budget * (1.0 - self._config.margin)
        fits = [w for w in self._widths if lo <= w <= hi and self._seed[w] <= target]
        self._width = max(fits) if fits else lo
        self._reason = (
            f"start: width {self._width:g} predicted {_ms(self._seed[self._width])}, "
            f"{_ms(budget)} budget at {self._config.target_fps:g} fps"
            + ("" if fits else ", no allowed width is predicted to fit"))

    # -- settings -------------------------------------------------------------------------

    @property
    def widths(self) -> tuple[float, ...]:
        """The model's widths, ascending."""
        return self._widths

    @property
    def width(self) -> float:
        """The width in use."""
        with self._lock:
            return self._width

    @property
    def adaptive(self) -> bool:
        """False while an operator pin holds the width."""
        with self._lock:
            return self._adaptive

    @property
    def config(self) -> ControllerConfig:
        """The settings in force."""
        with self._lock:
            return self._config

    def set_config(self, config: ControllerConfig) -> None:
        """Apply new settings; the next ``decide`` enforces them.

        A width held while adaptive is off that falls outside the new [min_width, max_width]
        moves to the nearest allowed width at the next ``decide``.

        Raises:
            ValueError: no model width lies within [min_width, max_width]; nothing changes.
        """
        self._check_config(config)
        with self._lock:
            old, self._config = self._config, config
            if (old.battery_thresholds, old.battery_hysteresis) != (
                    config.battery_thresholds, config.battery_hysteresis):
                # Levels of other thresholds mean nothing: classify the last reading afresh.
                self._battery_level = 0
                reading = self._battery
                if reading is not None and reading.percentage is not None:
                    self._battery_level = battery_level(
                        reading.percentage, config.battery_thresholds,
                        config.battery_hysteresis, 0)
            self._overruns = 0
            self._headroom_since = None

    def pin(self, width: float) -> Decision:
        """Hold ``width`` (an operator's choice) and stop adapting.

        Raises:
            ValueError: ``width`` is not a model width, or lies outside [min_width,
                max_width]; the message says which widths are valid and nothing changes.
        """
        with self._lock:
            w = check_pin(width, self._widths, self._config)
            self._adaptive = False
            return self._set_width(w, f"pinned at {w:g} by the operator")

    def set_adaptive(self, enabled: bool) -> None:
        """Resume adapting from the width in use, or hold it."""
        with self._lock:
            if enabled and not self._adaptive:
                self._overruns = 0
                self._headroom_since = None
                self._reason = f"adaptive again from {self._width:g}"
            elif not enabled and self._adaptive:
                self._reason = f"held at {self._width:g}: adaptive is off"
            self._adaptive = bool(enabled)

    # -- measurements ---------------------------------------------------------------------

    def observe_input(self, now: float) -> None:
        """Note that an input frame arrived at ``now`` (seconds)."""
        with self._lock:
            self._advance(now)
            self._input_rate.tick(now)

    def observe_frame(self, now: float, width: float, latency_s: float) -> None:
        """Note that a frame run at ``width`` took ``latency_s`` seconds, ending at ``now``.

        Non-finite or negative times are ignored.

        Raises:
            ValueError: ``width`` is not a model width.
        """
        w = match_width(width, self._widths)
        if not (math.isfinite(latency_s) and latency_s >= 0):
            return
        with self._lock:
            self._advance(now)
            base = self._predicted(w, now)
            self._ema[w] = base + self._config.ema_alpha * (latency_s - base)
            self._measured_at[w] = now
            if w == self._width:
                self._overruns = self._overruns + 1 if latency_s > self._budget(now)[0] else 0

    def observe_battery(
        self, now: float, percentage: float, status: int = POWER_SUPPLY_STATUS_UNKNOWN
    ) -> str | None:
        """Take one ``sensor_msgs/BatteryState`` reading.

        Returns:
            A warning for the log if the percentage was rejected (out of [0, 1]), else None.
        """
        with self._lock:
            self._advance(now)
            reading, warning = check_reading(now, percentage, status)
            if reading is not None:
                self._battery = reading
                if reading.percentage is not None:
                    self._battery_level = battery_level(
                        reading.percentage, self._config.battery_thresholds,
                        self._config.battery_hysteresis, self._battery_level)
            return warning

    # -- decisions ------------------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        """Pick the width for the next frame."""
        with self._lock:
            self._advance(now)
            cfg = self._config
            cur = self._width
            lo, hi = self._bounds()
            if not self._adaptive:
                if cur > hi:
                    return self._set_width(hi, f"held width {cur:g} is above max_width "
                                               f"{cfg.max_width:g}")
                if cur < lo:
                    return self._set_width(lo, f"held width {cur:g} is below min_width "
                                               f"{cfg.min_width:g}")
                return Decision(self._width, False, self._reason)
            cap, battery = self._battery_cap(now)
            upper = max(lo, hi if cap is None else min(hi, cap))
            budget, budget_text = self._budget(now)
            target = budget * (1.0 - cfg.margin)

            if cur > upper:
                if cap is not None and cap < hi:
                    reason = battery + (f", raised to min_width {lo:g}" if cap < lo else "")
                else:
                    reason = f"max_width is {cfg.max_width:g}"
                return self._set_width(upper, reason)
            if cur < lo:
                return self._set_width(lo, f"min_width is {cfg.min_width:g}")

            if self._overruns >= cfg.overrun_frames:
                frames = self._overruns
                self._overruns = 0
                fits = [w for w in self._widths
                        if lo <= w < cur and self._predicted(w, now) <= target]
                new = max(fits) if fits else lo
                reason = (f"{frames} frames over the {budget_text} at width {cur:g} "
                          f"(average {_ms(self._predicted(cur, now))}); ")
                if fits:
                    reason += (f"{new:g} predicted {self._prediction_text(new, now)} fits "
                               f"{_ms(target)}")
                else:
                    reason += (f"no narrower width is predicted to fit {_ms(target)}, "
                               f"taking the narrowest allowed")
                return self._set_width(new, reason)

            fits = [w for w in self._widths
                    if cur < w <= upper and self._predicted(w, now) <= target]
            if not fits:
                self._headroom_since = None
                return Decision(cur, False, self._reason)
            if self._headroom_since is None:
                self._headroom_since = now
            held = now - self._headroom_since
            if held >= cfg.min_dwell_s:
                new = max(fits)
                return self._set_width(new, (
                    f"headroom for {held:.1f} s: width {new:g} predicted "
                    f"{self._prediction_text(new, now)} fits {_ms(target)} ({budget_text} "
                    f"less {cfg.margin:.0%} margin)"))
            return Decision(cur, False, self._reason)

    def status(self, now: float) -> ControllerStatus:
        """A snapshot for diagnostics at ``now``."""
        with self._lock:
            self._advance(now)
            cap, battery = self._battery_cap(now)
            return ControllerStatus(
                width=self._width, adaptive=self._adaptive, reason=self._reason,
                switches=self._switches, input_fps=self._input_rate.rate(now),
                budget_s=self._budget(now)[0],
                predicted_s={w: self._predicted(w, now) for w in self._widths},
                battery=battery, battery_cap=cap)

    # -- internals (called with the lock held) ---------------------------------------------

    def _check_config(self, config: ControllerConfig) -> None:
        check_config(self._widths, config)

    def _set_width(self, width: float, reason: str) -> Decision:
        changed = width != self._width
        self._reason = reason
        if changed:
            self._width = width
            self._switches += 1
            self._overruns = 0
            self._headroom_since = None
        return Decision(width, changed, reason)

    def _advance(self, now: float) -> None:
        # A clock that goes back (sim time of a looping bag, or two threads' readings crossing)
        # moves every stored time with it, so ages stay as they were.
        if self._now is not None and now < self._now:
            delta = now - self._now
            for w, t in self._measured_at.items():
                if t is not None:
                    self._measured_at[w] = t + delta
            if self._headroom_since is not None:
                self._headroom_since += delta
            if self._battery is not None:
                self._battery = dataclasses.replace(
                    self._battery, stamp=self._battery.stamp + delta)
        self._now = now

    def _bounds(self) -> tuple[float, float]:
        return _bounds(self._widths, self._config)

    def _fresh(self, width: float, now: float) -> bool:
        t = self._measured_at[width]
        return t is not None and now - t <= self._config.latency_memory_s

    def _load_scale(self, now: float) -> tuple[float, float | None]:
        """Measured over start-up time of the most recently run width, and that width.

        Widths keep their ratios to one another far better than their absolute times, which
        follow the machine's load: a profile taken while the robot booted can be 3x today's
        times. So a width without a fresh measurement is predicted from its start-up time
        scaled by what the width in use shows now; otherwise a busy start would keep the
        controller narrow forever, and a calm start would step up into overruns.
        """
        fresh = [w for w in self._widths if self._fresh(w, now)]
        if not fresh:
            return 1.0, None
        ref = max(fresh, key=lambda w: self._measured_at[w])  # type: ignore[arg-type, return-value]
        return self._ema[ref] / self._seed[ref], ref

    def _predicted(self, width: float, now: float) -> float:
        if self._fresh(width, now):
            return self._ema[width]
        return self._seed[width] * self._load_scale(now)[0]

    def _prediction_text(self, width: float, now: float) -> str:
        """The prediction for ``width`` and, if scaled, where the scale came from."""
        text = _ms(self._predicted(width, now))
        if self._fresh(width, now):
            return text
        scale, ref = self._load_scale(now)
        if ref is None or abs(scale - 1.0) < 0.005:
            return text
        return f"{text} (start-up profile x{scale:.2f}, as measured at width {ref:g})"

    def _budget(self, now: float) -> tuple[float, str]:
        fps = self._config.target_fps
        rate = self._input_rate.rate(now)
        # A camera within 1% of the target is the target: jitter must not flip the reason text.
        if rate is not None and rate < 0.99 * fps:
            return 1.0 / rate, f"{_ms(1.0 / rate)} budget (input {rate:.1f} fps)"
        return 1.0 / fps, f"{_ms(1.0 / fps)} budget (target {fps:g} fps)"

    def _battery_cap(self, now: float) -> tuple[float | None, str]:
        r = self._battery
        if r is None:
            return None, "no battery reading"
        age = now - r.stamp
        if age > self._config.battery_timeout_s:
            return None, f"battery reading {age:.0f} s old, ignored"
        if r.on_power:
            return None, "battery full" if r.status == POWER_SUPPLY_STATUS_FULL else "charging"
        level = self._battery_level
        if level == 0:
            return None, f"battery at {_pct(r.percentage)}"
        value = self._config.battery_widths[level - 1]
        below = [w for w in self._widths if w <= value + _TOL]
        cap = max(below) if below else self._widths[0]
        threshold = self._config.battery_thresholds[level - 1]
        return cap, f"battery at {_pct(r.percentage)} (threshold {_pct(threshold)}): cap {cap:g}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"

