"""The operating-point controller: battery and frame-rate feedback to one (width, input size).

Pure Python, time passed in, so a test drives it with a simulated clock (``docs/node.md``, Width
and Operating points). At one input size (:func:`width_points`) it is the width controller of
``docs/node.md`` (Width): ``clamp(min(battery cap, frame-rate choice), min_width, max_width)``,
an operator pin overriding it until adaptation resumes. The rules, for operating points:

- The candidates are the *allowed* points: width within [min_width, max_width], cost within the
  battery's cost cap, and the operator's pins (a pinned width, a pinned size). Among them only
  the Pareto front counts (:func:`~slimseg_ros.control.front.pareto_front`): a point that
  another allowed point beats in accuracy and latency is never chosen.
- The point in use is kept until ``overrun_frames`` consecutive frames miss the budget; then
  the most accurate less accurate front point predicted to fit ``budget * (1 - margin)`` (the
  cheapest front point if none fits). A more accurate front point is taken only after
  ``min_dwell_s`` of continuous headroom (no flapping). A limit that excludes the point in use
  (cap, bounds, a new pin) applies at once: the most accurate allowed point no slower than the
  one in use, else the cheapest allowed.
- Battery caps are a **cost cap in GFLOPs**: below ``battery_thresholds[i]`` the allowed cost is
  that of width ``battery_widths[i]`` at the largest input size. GFLOPs, not latency, because a
  cap is about energy per frame, which follows the work done, while latency follows the
  machine's load too (a busy CPU would tighten a latency cap for reasons the battery does not
  have). With one size the cap allows exactly the widths up to the capped width, as before.
- Latency predictions per point: its own recent average if it ran within
  ``latency_memory_s``, else its seed (latency table or start-up profile) scaled by measured
  over seeded time of the point run last (the machine's load changes absolute times, not
  ratios).
- Pins: :meth:`pin` holds a width (the size still follows the budget), :meth:`pin_size` holds a
  size (the width follows), both hold the point; :meth:`set_adaptive` (True) releases both, and
  (False) holds the point in use. A pin overrides the battery cap as far as the pin reaches
  (a pinned width is kept on a low battery; its size still shrinks).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable, Mapping, Sequence

from slimseg_ros.control.battery import (
    POWER_SUPPLY_STATUS_FULL, POWER_SUPPLY_STATUS_UNKNOWN, BatteryReading, battery_level,
    check_reading)
from slimseg_ros.control.config import ControllerConfig
from slimseg_ros.control.limits import check_config, check_pin, width_bounds
from slimseg_ros.control.front import ControlPoint, check_points, pareto_front, point_name
from slimseg_ros.control.rate import RateMeter
from slimseg_ros.sizes import Size, format_size, format_sizes
from slimseg_ros.widths import WIDTH_TOLERANCE as _TOL
from slimseg_ros.widths import format_widths, match_width

__all__ = ["PointController", "PointDecision", "PointStatus"]

Key = tuple[float, Size]


@dataclasses.dataclass(frozen=True)
class PointDecision:
    """What ``decide`` returns."""

    width: float
    size: Size
    changed: bool
    """True if this call switched the point."""
    reason: str


@dataclasses.dataclass(frozen=True)
class PointStatus:
    """A snapshot for diagnostics."""

    width: float
    size: Size
    adaptive: bool
    pinned_width: float | None
    pinned_size: Size | None
    reason: str
    switches: int
    input_fps: float | None
    budget_s: float
    predicted_s: dict[Key, float]
    battery: str
    battery_cap: float | None
    """The width a battery cap names (its cost is the cap), None if none."""
    cost_cap_gflops: float | None
    front: tuple[Key, ...]
    """The allowed Pareto front now, least accurate first."""


def _size(size: Sequence[int]) -> Size:
    return (int(size[0]), int(size[1]))


class PointController:
    """Chooses the operating point from battery readings and measured frame times.

    Args:
        points: every operating point with its accuracy and cost (GFLOPs).
        latency_profile: seed seconds per point, keyed ``(width, (H, W))``; every point needs
            one (a device latency table, else the start-up profile).
        config: settings; defaults to ``ControllerConfig()``.
    """

    def __init__(self, points: Iterable[ControlPoint], latency_profile: Mapping[Key, float],
                 config: ControllerConfig | None = None) -> None:
        self._points = check_points(points)
        self._by_key = {p.key: p for p in self._points}
        self._widths = tuple(sorted({p.width for p in self._points}))
        self._sizes = tuple(sorted({p.size for p in self._points},
                                   key=lambda s: (-s[0] * s[1], s)))
        self._one_size = len(self._sizes) == 1
        self._seed: dict[Key, float] = {}
        for p in self._points:
            value = next((float(v) for k, v in latency_profile.items()
                          if abs(float(k[0]) - p.width) <= _TOL and _size(k[1]) == p.size), None)
            if value is None:
                every = (format_widths(self._widths) if self._one_size
                         else ", ".join(self._name(q.key) for q in self._points))
                raise ValueError(f"latency_profile has no time for {self._name(p.key)}; it "
                                 f"needs one for each of {every}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"latency_profile[{self._bare(p.key)}] must be a positive "
                                 f"time in seconds, got {value!r}")
            self._seed[p.key] = value
        self._config = ControllerConfig() if config is None else config
        check_config(self._widths, self._config)

        self._lock = threading.Lock()
        self._now: float | None = None
        self._ema = dict(self._seed)
        self._measured_at: dict[Key, float | None] = dict.fromkeys(self._seed)
        self._input_rate = RateMeter()
        self._battery: BatteryReading | None = None
        self._battery_level = 0
        self._pin_width: float | None = None
        self._pin_size: Size | None = None
        self._overruns = 0
        self._headroom_since: float | None = None
        self._switches = 0

        budget = 1.0 / self._config.target_fps
        target = budget * (1.0 - self._config.margin)
        front = self._front(self._allowed(None))
        fits = [p for p in front if self._seed[p.key] <= target]
        self._point: Key = (fits[-1] if fits else self._cheapest(front)).key
        self._reason = (
            f"start: {self._name(self._point)} predicted {_ms(self._seed[self._point])}, "
            f"{_ms(budget)} budget at {self._config.target_fps:g} fps"
            + ("" if fits else f", no allowed {self._noun()} is predicted to fit"))

    # -- settings -------------------------------------------------------------------------

    @property
    def widths(self) -> tuple[float, ...]:
        return self._widths

    @property
    def sizes(self) -> tuple[Size, ...]:
        """Input sizes, largest first."""
        return self._sizes

    @property
    def points(self) -> tuple[ControlPoint, ...]:
        return self._points

    @property
    def width(self) -> float:
        with self._lock:
            return self._point[0]

    @property
    def size(self) -> Size:
        with self._lock:
            return self._point[1]

    @property
    def point(self) -> Key:
        with self._lock:
            return self._point

    @property
    def adaptive(self) -> bool:
        """False while an operator pin (of the width, the size or both) holds."""
        with self._lock:
            return self._pin_width is None and self._pin_size is None

    @property
    def pinned_size(self) -> Size | None:
        with self._lock:
            return self._pin_size

    @property
    def config(self) -> ControllerConfig:
        with self._lock:
            return self._config

    def set_config(self, config: ControllerConfig) -> None:
        """Apply new settings (next ``decide`` enforces them); ``ValueError``: nothing changes."""
        check_config(self._widths, config)
        with self._lock:
            old, self._config = self._config, config
            if (old.battery_thresholds, old.battery_hysteresis) != (
                    config.battery_thresholds, config.battery_hysteresis):
                self._battery_level = 0
                reading = self._battery
                if reading is not None and reading.percentage is not None:
                    self._battery_level = battery_level(
                        reading.percentage, config.battery_thresholds,
                        config.battery_hysteresis, 0)
            self._overruns = 0
            self._headroom_since = None

    def pin(self, width: float) -> PointDecision:
        """Hold ``width`` (an operator's choice); the size still follows the budget unless
        pinned too.

        Raises:
            ValueError: not a model width, or outside [min_width, max_width]; nothing changes.
        """
        with self._lock:
            w = check_pin(width, self._widths, self._config)
            self._pin_width = w
            return self._repoint(f"pinned at {w:g} by the operator", self._now)

    def pin_size(self, size: Sequence[int] | None) -> PointDecision:
        """Hold input ``size`` (None releases the size pin); the width follows the budget
        unless pinned too.

        Raises:
            ValueError: not one of the sizes (the message lists them); nothing changes.
        """
        with self._lock:
            if size is None:
                self._pin_size = None
                self._reason = f"size released at {format_size(self._point[1])}"
                return PointDecision(*self._point, False, self._reason)
            s = _size(size)
            if s not in self._sizes:
                raise ValueError(f"resolution {format_size(s)} is not one of the input sizes "
                                 f"({format_sizes(self._sizes)})")
            self._pin_size = s
            return self._repoint(f"resolution pinned at {format_size(s)} by the operator",
                                 self._now)

    def set_adaptive(self, enabled: bool) -> None:
        """True: release every pin and adapt from the point in use; False: hold it."""
        with self._lock:
            pinned = self._pin_width is not None or self._pin_size is not None
            if enabled and pinned:
                self._pin_width = self._pin_size = None
                self._overruns = 0
                self._headroom_since = None
                self._reason = f"adaptive again from {self._bare(self._point)}"
            elif not enabled and not pinned:
                self._pin_width, self._pin_size = self._point
                self._reason = f"held at {self._bare(self._point)}: adaptive is off"

    # -- measurements ---------------------------------------------------------------------

    def observe_input(self, now: float) -> None:
        with self._lock:
            self._advance(now)
            self._input_rate.tick(now)

    def observe_frame(self, now: float, width: float, latency_s: float,
                      size: Sequence[int] | None = None) -> None:
        """A frame run at ``(width, size)`` (size None: the one in use) took ``latency_s``.

        Raises:
            ValueError: not one of the points.
        """
        w = match_width(width, self._widths)
        with self._lock:
            key = (w, self._point[1] if size is None else _size(size))
        if key not in self._by_key:
            raise ValueError(f"{self._name(key)} is not an operating point")
        if not (math.isfinite(latency_s) and latency_s >= 0):
            return
        with self._lock:
            self._advance(now)
            base = self._predicted(key, now)
            self._ema[key] = base + self._config.ema_alpha * (latency_s - base)
            self._measured_at[key] = now
            if key == self._point:
                self._overruns = self._overruns + 1 if latency_s > self._budget(now)[0] else 0

    def observe_battery(self, now: float, percentage: float,
                        status: int = POWER_SUPPLY_STATUS_UNKNOWN) -> str | None:
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

    def decide(self, now: float) -> PointDecision:
        """Pick the point for the next frame."""
        with self._lock:
            self._advance(now)
            cfg = self._config
            lo, hi = width_bounds(self._widths, cfg)
            if self._pin_width is not None and not lo <= self._pin_width <= hi:
                held = self._pin_width
                above = held > hi
                self._pin_width = hi if above else lo
                limit = (f"above max_width {cfg.max_width:g}" if above
                         else f"below min_width {cfg.min_width:g}")
                return self._repoint(f"held width {held:g} is {limit}", now)
            if len(self._pinned_points()) == 1:  # nothing left to choose: hold, as before
                return PointDecision(*self._point, False, self._reason)
            allowed, why = self._allowed_with_reason(now)
            front = self._front(allowed)
            cur = self._point
            if cur not in {p.key for p in front}:
                return self._set(self._fallback(front, cur), why, now)

            budget, budget_text = self._budget(now)
            target = budget * (1.0 - cfg.margin)
            acc = self._by_key[cur].accuracy
            if self._overruns >= cfg.overrun_frames:
                frames = self._overruns
                self._overruns = 0
                fits = [p for p in front if p.accuracy < acc
                        and self._predicted(p.key, now) <= target]
                new = fits[-1] if fits else self._cheapest(front)
                reason = (f"{frames} frames over the {budget_text} at {self._name(cur)} "
                          f"(average {_ms(self._predicted(cur, now))}); ")
                if fits:
                    reason += (f"{self._bare(new.key)} predicted "
                               f"{self._prediction_text(new.key, now)} fits {_ms(target)}")
                else:
                    reason += (f"no {self._cheaper()} is predicted to fit {_ms(target)}, "
                               f"taking the {self._cheapest_words()}")
                return self._set(new.key, reason, now)

            fits = [p for p in front if p.accuracy > acc
                    and self._predicted(p.key, now) <= target]
            if not fits:
                self._headroom_since = None
                return PointDecision(*cur, False, self._reason)
            if self._headroom_since is None:
                self._headroom_since = now
            held_s = now - self._headroom_since
            if held_s >= cfg.min_dwell_s:
                new = fits[-1]
                return self._set(new.key, (
                    f"headroom for {held_s:.1f} s: {self._name(new.key)} predicted "
                    f"{self._prediction_text(new.key, now)} fits {_ms(target)} ({budget_text} "
                    f"less {cfg.margin:.0%} margin)"), now)
            return PointDecision(*cur, False, self._reason)

    def status(self, now: float) -> PointStatus:
        with self._lock:
            self._advance(now)
            cap, battery, cost_cap = self._battery_cap(now)
            return PointStatus(
                width=self._point[0], size=self._point[1],
                adaptive=self._pin_width is None and self._pin_size is None,
                pinned_width=self._pin_width, pinned_size=self._pin_size, reason=self._reason,
                switches=self._switches, input_fps=self._input_rate.rate(now),
                budget_s=self._budget(now)[0],
                predicted_s={k: self._predicted(k, now) for k in self._seed},
                battery=battery, battery_cap=cap, cost_cap_gflops=cost_cap,
                front=tuple(p.key for p in self._front(self._allowed(now))))

    def forecast(self, key: Key, now: float) -> tuple[float, float]:
        """(frame budget, predicted time of ``key``) in seconds at ``now``: the two numbers
        :meth:`status` would give, without the rest of a snapshot (a per-frame question)."""
        with self._lock:
            self._advance(now)
            return self._budget(now)[0], self._predicted(key, now)

    # -- internals (lock held) -------------------------------------------------------------

    def _name(self, key: Key) -> str:
        return point_name(key[0], key[1], self._one_size)

    def _bare(self, key: Key) -> str:
        """``0.5`` for one size (as the width controller says it), else ``0.5@270x360``."""
        return f"{key[0]:g}" if self._one_size else self._name(key)

    def _noun(self) -> str:
        return "width" if self._one_size else "point"

    def _cheaper(self) -> str:
        return "narrower width" if self._one_size else "less accurate point"

    def _cheapest_words(self) -> str:
        return "narrowest allowed" if self._one_size else "fastest allowed point"

    def _pinned_points(self) -> list[ControlPoint]:
        return [p for p in self._points
                if (self._pin_width is None or p.width == self._pin_width)
                and (self._pin_size is None or p.size == self._pin_size)]

    def _allowed(self, now: float | None) -> list[ControlPoint]:
        return self._allowed_with_reason(now)[0]

    def _allowed_with_reason(self, now: float | None) -> tuple[list[ControlPoint], str]:
        """The allowed points, and the words for moving into them when the point in use is not
        one (as the width controller words it, for one size)."""
        cfg = self._config
        lo, hi = width_bounds(self._widths, cfg)
        bounded = [p for p in self._pinned_points() if lo <= p.width <= hi]
        cap, battery, cost_cap = self._battery_cap(now) if now is not None else (None, "", None)
        cur_w = self._point[0] if hasattr(self, "_point") else None
        capped = bounded if cost_cap is None else [
            p for p in bounded if p.cost <= cost_cap * (1 + 1e-9)]
        if capped:
            if cur_w is not None and cur_w < lo:
                why = f"min_width is {cfg.min_width:g}"
            elif cost_cap is not None and cap is not None and (
                    cap < hi and self._by_key[self._point].cost > cost_cap * (1 + 1e-9)):
                why = battery
            elif cur_w is not None and cur_w > hi:
                why = f"max_width is {cfg.max_width:g}"
            elif self._pin_size is not None or self._pin_width is not None:
                why = "pinned: " + ", ".join(
                    t for t in (f"width {self._pin_width:g}" if self._pin_width is not None
                                else "", f"resolution {format_size(self._pin_size)}"
                                if self._pin_size is not None else "") if t)
            elif cur_w is not None:
                why = f"{self._name(self._point)} is dominated by a faster, as accurate point"
            else:
                why = "start"
            return capped, why
        # The cap admits nothing within the bounds and pins: their cheapest points (as before,
        # a cap below min_width is raised to it, and a pinned width stays).
        cheapest = min(p.cost for p in bounded)
        why = (f"{battery}; pinned width {self._pin_width:g} at its cheapest size"
               if self._pin_width is not None else battery + f", raised to min_width {lo:g}")
        return [p for p in bounded if p.cost <= cheapest * (1 + 1e-9)], why

    def _front(self, allowed: list[ControlPoint]) -> list[ControlPoint]:
        return pareto_front(allowed, self._seed)

    def _cheapest(self, front: list[ControlPoint]) -> ControlPoint:
        return min(front, key=lambda p: (self._seed[p.key], p.cost, p.width))

    def _fallback(self, front: list[ControlPoint], cur: Key) -> Key:
        """Into the allowed front: the most accurate point neither more accurate nor slower (by
        seed) than the one in use, else the cheapest."""
        acc = self._by_key[cur].accuracy
        ok = [p for p in front if p.accuracy <= acc and self._seed[p.key] <= self._seed[cur]]
        return (ok[-1] if ok else self._cheapest(front)).key

    def _repoint(self, reason: str, now: float | None) -> PointDecision:
        """After a pin: the best allowed point that fits the budget now (else the cheapest)."""
        t = self._now if now is None else now
        front = self._front(self._allowed(t))
        budget = self._budget(t)[0] if t is not None else 1.0 / self._config.target_fps
        target = budget * (1.0 - self._config.margin)
        at = t if t is not None else 0.0
        fits = [p for p in front if self._predicted(p.key, at) <= target]
        return self._set((fits[-1] if fits else self._cheapest(front)).key, reason, t)

    def _set(self, key: Key, reason: str, now: float | None) -> PointDecision:
        changed = key != self._point
        self._reason = reason
        if changed:
            self._point = key
            self._switches += 1
            self._overruns = 0
            self._headroom_since = None
        return PointDecision(key[0], key[1], changed, reason)

    def _advance(self, now: float) -> None:
        if self._now is not None and now < self._now:
            delta = now - self._now
            for k, t in self._measured_at.items():
                if t is not None:
                    self._measured_at[k] = t + delta
            if self._headroom_since is not None:
                self._headroom_since += delta
            if self._battery is not None:
                self._battery = dataclasses.replace(
                    self._battery, stamp=self._battery.stamp + delta)
        self._now = now

    def _fresh(self, key: Key, now: float) -> bool:
        t = self._measured_at[key]
        return t is not None and now - t <= self._config.latency_memory_s

    def _load_scale(self, now: float) -> tuple[float, Key | None]:
        fresh = [k for k in self._seed if self._fresh(k, now)]
        if not fresh:
            return 1.0, None
        ref = max(fresh, key=lambda k: self._measured_at[k])  # type: ignore[arg-type, return-value]
        return self._ema[ref] / self._seed[ref], ref

    def _predicted(self, key: Key, now: float) -> float:
        if self._fresh(key, now):
            return self._ema[key]
        return self._seed[key] * self._load_scale(now)[0]

    def _prediction_text(self, key: Key, now: float) -> str:
        text = _ms(self._predicted(key, now))
        if self._fresh(key, now):
            return text
        scale, ref = self._load_scale(now)
        if ref is None or abs(scale - 1.0) < 0.005:
            return text
        where = f"width {ref[0]:g}" if self._one_size else self._name(ref)
        return f"{text} (start-up profile x{scale:.2f}, as measured at {where})"

    def _budget(self, now: float | None) -> tuple[float, str]:
        fps = self._config.target_fps
        rate = self._input_rate.rate(now) if now is not None else None
        if rate is not None and rate < 0.99 * fps:
            return 1.0 / rate, f"{_ms(1.0 / rate)} budget (input {rate:.1f} fps)"
        return 1.0 / fps, f"{_ms(1.0 / fps)} budget (target {fps:g} fps)"

    def _battery_cap(self, now: float) -> tuple[float | None, str, float | None]:
        """(capped width, words, cost cap in GFLOPs): the cost of the capped width at the
        largest size."""
        r = self._battery
        if r is None:
            return None, "no battery reading", None
        age = now - r.stamp
        if age > self._config.battery_timeout_s:
            return None, f"battery reading {age:.0f} s old, ignored", None
        if r.on_power:
            return None, ("battery full" if r.status == POWER_SUPPLY_STATUS_FULL
                          else "charging"), None
        level = self._battery_level
        if level == 0:
            return None, f"battery at {_pct(r.percentage)}", None
        value = self._config.battery_widths[level - 1]
        below = [w for w in self._widths if w <= value + _TOL]
        cap = max(below) if below else self._widths[0]
        cost = self._by_key[(cap, self._sizes[0])].cost if (
            cap, self._sizes[0]) in self._by_key else max(
            p.cost for p in self._points if p.width == cap)
        threshold = self._config.battery_thresholds[level - 1]
        words = f"battery at {_pct(r.percentage)} (threshold {_pct(threshold)}): cap {cap:g}"
        if not self._one_size:
            words += f" ({cost:.2f} GFLOPs)"
        return cap, words, cost


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def width_points(widths: Iterable[float], size: Size = (1, 1)) -> list[ControlPoint]:
    """One size's widths as points, cost and accuracy growing with width (a stand-in when
    nothing better is known: a wider network does more work)."""
    return [ControlPoint(float(w), size, float(w), float(w) ** 2) for w in widths]

