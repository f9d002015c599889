"""Run-time operating-point controller (pure Python: no ROS, no torch).

The node feeds it input arrivals, per-frame processing times and battery readings, each with
the time they happened, and asks ``decide(now)`` for the width (and input size) of the next
frame. See ``docs/node.md`` (Width, Operating points) and ``points.py``.
"""

from slimseg_ros.control.battery import (
    POWER_SUPPLY_STATUS_CHARGING, POWER_SUPPLY_STATUS_DISCHARGING, POWER_SUPPLY_STATUS_FULL,
    POWER_SUPPLY_STATUS_NOT_CHARGING, POWER_SUPPLY_STATUS_UNKNOWN)
from slimseg_ros.control.config import ControllerConfig
from slimseg_ros.control.front import ControlPoint, pareto_front
from slimseg_ros.control.limits import check_config, check_pin
from slimseg_ros.control.points import PointController, PointDecision, PointStatus, width_points
from slimseg_ros.control.rate import RateMeter

__all__ = [
    "ControllerConfig", "RateMeter", "check_config", "check_pin", "ControlPoint", "pareto_front",
    "PointController", "PointDecision", "PointStatus", "width_points",
    "POWER_SUPPLY_STATUS_UNKNOWN", "POWER_SUPPLY_STATUS_CHARGING",
    "POWER_SUPPLY_STATUS_DISCHARGING", "POWER_SUPPLY_STATUS_NOT_CHARGING",
    "POWER_SUPPLY_STATUS_FULL",
]
