"""Quality of service of the image input, the outputs and the status topics.

With the Fast DDS defaults of the ROS 2 wheels, a best-effort subscription loses every frame
larger than about 512 KB (640x480 rgb8 and up) published from another process, even from a
reliable publisher: the connection gets the weaker side's reliability. So ``input_reliability:
auto`` subscribes reliable when every publisher on the topic is reliable, and best effort
(REP 2003's sensor-data QoS, which matches any publisher) when one is best effort or none is
there yet. The node re-checks as publishers come and go. History is always keep-last 1: the
worker takes only the newest frame anyway.

A publisher that stopped delivering must not hold that choice: a camera killed without a clean
exit stays in the graph until its DDS lease expires (about 20 s), and a best-effort ghost would
keep a reliable replacement on best effort, where its large frames are lost (most of them: a
trickle still arrives). :class:`InputQosChooser` therefore leaves out a best-effort publisher
from which nothing has arrived for ``stale_after_s`` while a reliable publisher is there, and
re-matches everyone when the reliable subscription then stays silent as well (after a delay that
doubles each time that did not help, so idle cameras cause no flapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)

__all__ = [
    "RELIABILITY_MODES", "InputQosChooser", "choose_reliability", "input_qos", "output_qos",
    "latched_qos", "battery_qos", "reliability_name",
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


@dataclass
class InputQosChooser:
    """``choose_reliability`` with memory: which publishers deliver nothing (see module text).

    Pure Python with time passed in; the node calls :meth:`choose` every second with the time
    each publisher last delivered a frame (from the messages' publisher GIDs).
    """

    stale_after_s: float = 2.0
    """Silence of a best-effort publisher after which it no longer decides the QoS."""
    max_retry_s: float = 64.0
    """Longest wait before re-matching publishers left out earlier."""
    _seen: dict[Hashable, float] = field(default_factory=dict)
    _suspects: set[Hashable] = field(default_factory=set)
    _retries: int = 0

    def choose(self, mode: str, publishers: Sequence[tuple[Hashable, ReliabilityPolicy]],
               now: float, current: ReliabilityPolicy | None = None,
               subscribed_at: float | None = None,
               heard: dict[Hashable, float] | None = None) -> tuple[ReliabilityPolicy, str]:
        """The reliability to subscribe with, and why.

        Args:
            mode: ``auto`` | ``best_effort`` | ``reliable``.
            publishers: (identity, reliability) of each publisher on the topic now.
            now: the time (seconds, any monotonic clock).
            current: the reliability of the subscription in place (None: none yet).
            subscribed_at: when it was made.
            heard: identity -> when that publisher's last frame arrived.
        """
        if mode != "auto":
            self._suspects.clear()
            return choose_reliability(mode, [])
        heard = heard or {}
        present = dict(publishers)
        self._seen = {k: self._seen.get(k, now) for k in present}
        self._suspects &= set(present)
        last_any = max(heard.values(), default=None)
        if last_any is not None and subscribed_at is not None and last_any >= subscribed_at:
            self._retries = 0
        reliable = [k for k, r in present.items() if r == ReliabilityPolicy.RELIABLE]
        best_effort = [k for k, r in present.items() if r != ReliabilityPolicy.RELIABLE]
        if current == ReliabilityPolicy.BEST_EFFORT and reliable:
            for k in best_effort:  # a best-effort publisher silent this long: a ghost
                marks = [t for t in (self._seen[k], heard.get(k), subscribed_at) if t is not None]
                if now - max(marks) >= self.stale_after_s:
                    self._suspects.add(k)
        elif current == ReliabilityPolicy.RELIABLE and self._suspects:
            marks = [t for t in (subscribed_at, last_any) if t is not None]
            silent_s = now - max(marks) if marks else 0.0
            if silent_s >= min(self.stale_after_s * 2 ** (self._retries + 1), self.max_retry_s):
                self._suspects.clear()  # the reliable side is silent too: try everyone again
                self._retries += 1
        kept = [r for k, r in present.items() if k not in self._suspects]
        policy, why = choose_reliability("auto", kept)
        if self._suspects:
            why += (f"; leaving out {len(self._suspects)} best-effort publisher(s) that "
                    f"delivered nothing for {self.stale_after_s:g} s")
        return policy, why


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
