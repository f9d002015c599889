"""Event rate from arrival times (input frames for the controller, outputs for diagnostics)."""

from __future__ import annotations

__all__ = ["RateMeter"]


class RateMeter:
    """Rate of events from their times, as an exponential average of the intervals.

    A gap longer than ``gap_factor`` average intervals is a pause (camera stopped, bag looped,
    clock jumped back), not a slower rate: it is not averaged in, and the meter starts over
    from the next interval. A rate that really drops therefore takes two intervals to show.
    Not thread-safe: one caller, or the caller's lock.
    """

    def __init__(self, alpha: float = 0.1, gap_factor: float = 4.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha:g}")
        if not gap_factor > 1.0:
            raise ValueError(f"gap_factor must be > 1, got {gap_factor:g}")
        self._alpha = alpha
        self._gap_factor = gap_factor
        self._last: float | None = None
        self._interval: float | None = None

    def reset(self) -> None:
        """Forget every event."""
        self._last = None
        self._interval = None

    def tick(self, now: float) -> None:
        """Record one event at time ``now`` (seconds)."""
        last, self._last = self._last, now
        if last is None:
            return
        dt = now - last
        if dt <= 0.0:
            if dt < 0.0:  # the clock went back: nothing before it is comparable
                self._interval = None
            return
        if self._interval is None:
            self._interval = dt
        elif dt > self._gap_factor * self._interval:
            self._interval = None
        else:
            self._interval += self._alpha * (dt - self._interval)

    def rate(self, now: float) -> float | None:
        """Events per second at ``now``, or None if unknown or paused.

        Unknown until two events came in close enough; paused once no event came for
        ``gap_factor`` average intervals.
        """
        if self._interval is None or self._last is None:
            return None
        if now - self._last > self._gap_factor * self._interval:
            return None
        return 1.0 / self._interval
