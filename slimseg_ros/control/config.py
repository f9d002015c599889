"""Settings of the operating-point controller, checked once when they are made.

The fields mirror the node parameters (``docs/node.md``, ``target_fps``, ``min_width``,
``max_width``, ``battery_*``, ``min_dwell_s``, ``overrun_frames``) plus a few tuning values
that have no parameter yet (``margin``, ``ema_alpha``, ``battery_timeout_s``,
``latency_memory_s``). A bad value raises ``ValueError`` whose text says, per field, what is
wrong and what is allowed, so the node can hand it to ``ros2 param set`` unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["ControllerConfig"]

_FLOAT_FIELDS = (
    "target_fps", "min_width", "max_width", "battery_hysteresis", "battery_timeout_s",
    "min_dwell_s", "margin", "ema_alpha", "latency_memory_s",
)
_LIST_FIELDS = ("battery_thresholds", "battery_widths")


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """What the controller aims for and how fast it reacts.

    Widths here are fractions of the full channel count. They need not be widths of the loaded
    model: a cap becomes the widest model width not above it (the narrowest if none is), and
    ``min_width`` the narrowest model width not below it.
    """

    target_fps: float = 15.0
    """Frames per second to keep up with; the input rate lowers it when the camera is slower."""
    min_width: float = 0.0
    """Never run narrower than this (0 = no floor)."""
    max_width: float = 1.0
    """Never run wider than this."""
    battery_thresholds: tuple[float, ...] = (0.5, 0.3, 0.15)
    """Battery fractions (strictly descending, in (0, 1)); below ``battery_thresholds[i]``
    the width is capped at ``battery_widths[i]``."""
    battery_widths: tuple[float, ...] = (0.75, 0.5, 0.25)
    """Width caps, one per threshold; they may not grow as the battery drains."""
    battery_hysteresis: float = 0.03
    """A cap is lifted only once the battery is this far above its threshold again."""
    battery_timeout_s: float = 30.0
    """A battery reading older than this no longer caps the width (drivers publish at ~1 Hz)."""
    min_dwell_s: float = 3.0
    """Headroom must last this long before the width steps up."""
    overrun_frames: int = 3
    """This many consecutive frames over budget step the width down."""
    margin: float = 0.1
    """A width fits if its predicted latency is within budget * (1 - margin)."""
    ema_alpha: float = 0.2
    """Weight of the newest frame in the per-width latency average."""
    latency_memory_s: float = 30.0
    """A width not run for this long is predicted from its start-up profile again, so one slow
    spell cannot keep the controller narrow forever."""

    def __post_init__(self) -> None:
        problems = []
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{name} must be a number, got {value!r}")
            else:
                object.__setattr__(self, name, float(value))
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            try:
                items = tuple(value)
            except TypeError:
                items = (value,)
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
                problems.append(f"{name} must be a list of numbers, got {value!r}")
            else:
                object.__setattr__(self, name, tuple(float(v) for v in items))
        if isinstance(self.overrun_frames, bool) or not isinstance(self.overrun_frames, int):
            problems.append(f"overrun_frames must be an integer >= 1, got {self.overrun_frames!r}")
        if problems:
            raise ValueError("; ".join(problems))
        problems = _range_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes: Any) -> ControllerConfig:
        """Return a copy with ``changes`` applied, checked like a new config."""
        return dataclasses.replace(self, **changes)


def _range_problems(c: ControllerConfig) -> list[str]:
    """List what is out of range in ``c``, one sentence per field."""
    def bad(value: float, ok: bool) -> bool:
        return not (math.isfinite(value) and ok)

    p = []
    if bad(c.target_fps, c.target_fps > 0):
        p.append(f"target_fps must be > 0, got {c.target_fps:g}")
    if bad(c.min_width, 0 <= c.min_width <= 1):
        p.append(f"min_width must be in [0, 1], got {c.min_width:g}")
    if bad(c.max_width, 0 < c.max_width <= 1):
        p.append(f"max_width must be in (0, 1], got {c.max_width:g}")
    if not p and c.min_width > c.max_width:
        p.append(f"min_width ({c.min_width:g}) must not exceed max_width ({c.max_width:g})")
    t, w = c.battery_thresholds, c.battery_widths
    if not all(math.isfinite(v) and 0 < v < 1 for v in t) or any(a <= b for a, b in zip(t, t[1:])):
        p.append(f"battery_thresholds must be strictly descending values in (0, 1), got {_fmt(t)}")
    if not all(math.isfinite(v) and 0 < v <= 1 for v in w) or any(a < b for a, b in zip(w, w[1:])):
        p.append(f"battery_widths must be values in (0, 1] that do not increase, got {_fmt(w)}")
    if len(t) != len(w):
        p.append(f"battery_thresholds and battery_widths need one width per threshold, got "
                 f"{len(t)} thresholds {_fmt(t)} and {len(w)} widths {_fmt(w)}")
    if bad(c.battery_hysteresis, 0 <= c.battery_hysteresis < 0.5):
        p.append(f"battery_hysteresis must be in [0, 0.5), got {c.battery_hysteresis:g}")
    if math.isnan(c.battery_timeout_s) or c.battery_timeout_s <= 0:
        p.append(f"battery_timeout_s must be > 0 (inf = never stale), got {c.battery_timeout_s:g}")
    if bad(c.min_dwell_s, c.min_dwell_s >= 0):
        p.append(f"min_dwell_s must be >= 0, got {c.min_dwell_s:g}")
    if c.overrun_frames < 1:
        p.append(f"overrun_frames must be an integer >= 1, got {c.overrun_frames}")
    if bad(c.margin, 0 <= c.margin < 1):
        p.append(f"margin must be in [0, 1), got {c.margin:g}")
    if bad(c.ema_alpha, 0 < c.ema_alpha <= 1):
        p.append(f"ema_alpha must be in (0, 1], got {c.ema_alpha:g}")
    if math.isnan(c.latency_memory_s) or c.latency_memory_s <= 0:
        p.append(f"latency_memory_s must be > 0 (inf = never forget), got {c.latency_memory_s:g}")
    return p


def _fmt(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
