"""Accuracy without labels, at run time: when to check agreement, and when a drop means a change.

A slimmable network makes a label-free accuracy signal nearly free: now and then the node also
runs its most accurate point on the frame it just answered and measures how far the point in use
agrees with it (mIoU between the two label maps). That agreement is naturally lower for cheaper
points, so each point is compared with its own baseline (its first checks); a *sustained* drop
below that baseline is logged once as a likely camera or domain change.

Pure Python, time passed in (like the controllers).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Hashable

__all__ = ["AgreementMonitor"]


@dataclass
class AgreementMonitor:
    """Decides when to check agreement and notices sustained drops.

    Attributes:
        period_s: at most one check per this many seconds (0 = never).
        drop: a check is low when it is this far (mIoU) below its point's baseline.
        sustain: this many low checks in a row make a drop (logged once, until agreement
            recovers above ``baseline - drop / 2``).
        baseline_checks: checks per point that form its baseline (their mean).
    """

    period_s: float = 10.0
    drop: float = 0.15
    sustain: int = 3
    baseline_checks: int = 3
    _last: float | None = None
    _samples: dict[Hashable, list[float]] = field(default_factory=dict)
    _low: int = 0
    _dropped: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period_s) and self.period_s >= 0):
            raise ValueError(f"agreement_period_s must be >= 0, got {self.period_s!r}")
        if not 0 < self.drop < 1 or self.sustain < 1 or self.baseline_checks < 1:
            raise ValueError("drop must be in (0, 1), sustain and baseline_checks >= 1")

    def period_passed(self, now: float) -> bool:
        """Whether checks are on and ``period_s`` has passed since the last one."""
        with self._lock:
            return self.period_s > 0 and (self._last is None
                                          or now - self._last >= self.period_s)

    def due(self, now: float, idle_s: float, reference_s: float) -> bool:
        """Whether to check now: the period has passed and the predicted idle time before the
        next frame (``idle_s``) holds the reference run (``reference_s``), so no frame waits."""
        return self.period_passed(now) and idle_s >= reference_s

    def record(self, now: float, point: Hashable, agreement: float) -> str | None:
        """Take one check of ``point``; a message the first time a sustained drop shows."""
        with self._lock:
            self._last = now
            if not math.isfinite(agreement):
                return None
            samples = self._samples.setdefault(point, [])
            if len(samples) < self.baseline_checks:
                samples.append(agreement)
                return None
            baseline = sum(samples) / len(samples)
            if agreement < baseline - self.drop:
                self._low += 1
            elif agreement > baseline - self.drop / 2:
                self._low = 0
                self._dropped = False
            if self._low >= self.sustain and not self._dropped:
                self._dropped = True
                return (f"agreement with the most accurate point fell to {agreement:.2f} "
                        f"(baseline {baseline:.2f} at this point) for {self._low} checks: likely "
                        "a camera or domain change; consider `slimseg recalibrate --bag BAG` or "
                        "`slimseg adapt --bag BAG`")
            return None

    def baseline(self, point: Hashable) -> float | None:
        with self._lock:
            samples = self._samples.get(point)
            return sum(samples) / len(samples) if samples else None
