"""Battery readings to width caps: range checks, charging, hysteresis, staleness.

Readings follow ``sensor_msgs/BatteryState``: ``percentage`` is a fraction in [0, 1] (NaN when
the driver does not measure it) and ``power_supply_status`` is one of the constants below,
copied here so this module needs no ROS.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = [
    "POWER_SUPPLY_STATUS_UNKNOWN", "POWER_SUPPLY_STATUS_CHARGING",
    "POWER_SUPPLY_STATUS_DISCHARGING", "POWER_SUPPLY_STATUS_NOT_CHARGING",
    "POWER_SUPPLY_STATUS_FULL", "BatteryReading", "check_reading", "battery_level",
]

# Values of sensor_msgs/BatteryState.POWER_SUPPLY_STATUS_*.
POWER_SUPPLY_STATUS_UNKNOWN = 0
POWER_SUPPLY_STATUS_CHARGING = 1
POWER_SUPPLY_STATUS_DISCHARGING = 2
POWER_SUPPLY_STATUS_NOT_CHARGING = 3
POWER_SUPPLY_STATUS_FULL = 4

_ON_POWER = (POWER_SUPPLY_STATUS_CHARGING, POWER_SUPPLY_STATUS_FULL)


@dataclasses.dataclass(frozen=True)
class BatteryReading:
    """The part of one battery message that the controller keeps."""

    stamp: float
    """Controller time at which it arrived, seconds."""
    percentage: float | None
    """Charge as a fraction in [0, 1], or None when the message had no usable value."""
    status: int
    """``POWER_SUPPLY_STATUS_*``."""

    @property
    def on_power(self) -> bool:
        """True while charging or full: then the battery caps nothing."""
        return self.status in _ON_POWER


def check_reading(
    stamp: float, percentage: float, status: int
) -> tuple[BatteryReading | None, str | None]:
    """Turn one message into a reading, or explain why it is unusable.

    A reading is usable if its percentage is a fraction in [0, 1] or its status says the robot
    is on power (charging needs no percentage to lift the caps). NaN is how the message says
    "not measured", so it is skipped without a warning; any other value outside [0, 1] is
    rejected with one, and a value in (1, 100] is named as a likely 0..100 driver rather than
    rescaled by guess.

    Returns:
        ``(reading, warning)``; ``reading`` is None when nothing in the message is usable.
    """
    warning = None
    p: float | None = float(percentage)
    if math.isnan(p):
        p = None
    elif not 0.0 <= p <= 1.0:
        hint = (" (this driver seems to publish 0..100)" if 1.0 < p <= 100.0 else "")
        warning = (f"battery percentage {p:g} ignored: sensor_msgs/BatteryState.percentage "
                   f"is a fraction in [0, 1]{hint}")
        p = None
    reading = BatteryReading(float(stamp), p, int(status))
    if p is None and not reading.on_power:
        return None, warning
    return reading, warning


def battery_level(
    percentage: float, thresholds: tuple[float, ...], hysteresis: float, previous: int
) -> int:
    """How many thresholds the battery is below, with hysteresis on the way up.

    A threshold ``t`` is crossed as soon as ``percentage < t`` and stays crossed until
    ``percentage >= t + hysteresis``. ``thresholds`` are strictly descending, so the level is
    also the index + 1 of the deepest crossed threshold.
    """
    entered = sum(percentage < t for t in thresholds)
    held = sum(percentage < t + hysteresis for t in thresholds)
    return max(entered, min(previous, held))
