"""Header stamps <-> nanoseconds, for rclpy and ``rosbags`` messages alike (no ROS needed).

Frames and their labels are matched by stamp everywhere (the node's timings, bag reading, the
replay, the tests), always as one integer of nanoseconds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["split_ns", "stamp_ns"]

_NS = 1_000_000_000


def stamp_ns(header: Any) -> int:
    """A ``std_msgs/Header``'s stamp (or a ``builtin_interfaces/Time``) in nanoseconds."""
    stamp = getattr(header, "stamp", header)
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def split_ns(ns: int) -> tuple[int, int]:
    """Nanoseconds since the epoch -> (sec, nanosec) of a ``builtin_interfaces/Time``."""
    if ns < 0:
        raise ValueError(f"stamps must not be negative, got {ns} ns")
    return int(ns // _NS), int(ns % _NS)
