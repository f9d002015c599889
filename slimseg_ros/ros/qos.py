"""Quality of service of the image input, the outputs and the status topics.

With the Fast DDS defaults of the ROS 2 wheels, a best-effort subscription loses every frame
larger than about 512 KB (640x480 rgb8 and up) published from another process, even from a
reliable publisher: the connection gets the weaker side's reliability. So ``input_reliability:
auto`` subscribes reliable when every publisher on the topic is reliable, and best effort
(REP 2003's sensor-data QoS, which matches any publisher) when one is best effort or none is
there yet. The node re-checks as publishers come and go. History is always keep-last 1: the
worker takes only the newest frame anyway.
"""

from __future__ import annotations

from typing import Iterable

from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)

__all__ = [
    "RELIABILITY_MODES", "choose_reliability", "input_qos", "output_qos", "latched_qos",
    "battery_qos", "reliability_name",
]

RELIABILITY_MODES: tuple[str, ...] = ("auto", "best_effort", "reliable")


def reliability_name(policy: ReliabilityPolicy) -> str:
    """``reliable`` / ``best_effort`` / the enum's name in lower case."""
    return policy.name.lower()


def choose_reliability(mode: str, publishers: Iterable[ReliabilityPolicy]
                       ) -> tuple[ReliabilityPolicy, str]:
    """The reliability to subscribe with, and why.

    Args:
        mode: ``auto`` | ``best_effort`` | ``reliable``.
        publishers: the reliability of each publisher found on the topic.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode == "reliable":
        return ReliabilityPolicy.RELIABLE, "input_reliability is reliable"
    if mode == "best_effort":
        return ReliabilityPolicy.BEST_EFFORT, "input_reliability is best_effort"
    if mode != "auto":
        raise ValueError(
            f"input_reliability must be one of {', '.join(RELIABILITY_MODES)}, got {mode!r}")
    found = list(publishers)
    if not found:
        return ReliabilityPolicy.BEST_EFFORT, "auto: no publisher yet, sensor-data best effort"
    reliable = sum(p == ReliabilityPolicy.RELIABLE for p in found)
    if reliable == len(found):
        return ReliabilityPolicy.RELIABLE, f"auto: matching {reliable} reliable publisher(s)"
    return ReliabilityPolicy.BEST_EFFORT, (
        f"auto: {len(found) - reliable} of {len(found)} publisher(s) best effort")


def input_qos(reliability: ReliabilityPolicy) -> QoSProfile:
    """Keep-last 1, volatile, with the given reliability."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos() -> QoSProfile:
    """Labels, colour and overlay: reliable keep-last 1.

    A reliable publisher serves reliable and best-effort subscribers alike; keep-last 1 never
    blocks the worker on a slow subscriber.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """``~/width``: transient local, so a late subscriber gets the width in use at once."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def battery_qos() -> QoSProfile:
    """Sensor-data QoS (best effort, depth 5): matches any battery driver."""
    return qos_profile_sensor_data
