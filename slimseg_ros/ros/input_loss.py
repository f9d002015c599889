"""Frames a camera sent that never reached the node (pure Python: time and counts passed in).

A best-effort camera that publishes large frames over Fast DDS defaults loses most of them in
transport (docs/transport.md); the node's own counters never see those frames, so without this
they look healthy. Two signals, each a lower bound of what was lost, both offered by
``rmw_fastrtps``:

- the DDS *message lost* event of the subscription: samples the middleware gave up on (it fires
  even when not one frame arrives);
- gaps in each publisher's ``publication_sequence_number`` (message info of every frame taken):
  everything between two frames the node took, also frames its own one-deep input queue
  overwrote because the executor fell behind.

The loss is the larger of the two counts; the fraction over a recent window decides the warning.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InputLoss", "InputLossMeter", "loss_warning", "profile_hint", "PROFILE_NAME"]

PROFILE_NAME = "fastdds_large_data.xml"


@dataclass(frozen=True)
class InputLoss:
    """What :meth:`InputLossMeter.summary` reports."""

    received: int
    """Frames taken by the node's callback, in all."""
    lost: int
    """Frames lost before the callback, in all (the larger of the two signals)."""
    lost_in_transport: int
    """Of these, the ones the middleware reported lost (message lost event)."""
    recent_received: int
    recent_lost: int
    recent_lost_in_transport: int
    window_s: float
    """The span the ``recent_*`` counts cover (up to the meter's window)."""
    source: str
    """Which signals this RMW offers: ``event+sequence``, ``event``, ``sequence`` or ``none``."""

    @property
    def recent_fraction(self) -> float | None:
        """Share of the recent frames that were lost, None before any frame was sent."""
        sent = self.recent_received + self.recent_lost
        return self.recent_lost / sent if sent else None


class InputLossMeter:
    """Counts frames lost before the node's image callback. Thread-safe."""

    def __init__(self, window_s: float = 5.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self.event_supported = False
        self._received = 0
        self._event_lost = 0
        self._gap_lost = 0
        self._last_seq: dict[bytes, int] = {}
        self._saw_sequence = False
        # (time, received, lost, lost in transport) at each summary: the window's baseline
        self._history: deque[tuple[float, int, int, int]] = deque()
        self._lock = threading.Lock()

    def new_subscription(self, event_supported: bool) -> None:
        """A new subscription starts: sequence numbers restart their comparison (the frames
        between the old subscription and the new one were never the camera's loss)."""
        with self._lock:
            self.event_supported = event_supported
            self._last_seq.clear()

    def on_message(self, publisher: bytes | None, sequence: int | None) -> None:
        """A frame reached the callback; ``sequence`` is its publication sequence number."""
        with self._lock:
            self._received += 1
            if publisher is None or sequence is None:
                return
            self._saw_sequence = True
            last = self._last_seq.get(publisher)
            if last is not None and sequence > last + 1:
                self._gap_lost += sequence - last - 1
            if last is None or sequence > last:  # an older sample (reordered) changes nothing
                self._last_seq[publisher] = sequence

    def forget_publisher(self, publisher: bytes) -> None:
        """A publisher left the topic (its restart gets a new identity anyway)."""
        with self._lock:
            self._last_seq.pop(publisher, None)

    def on_lost_event(self, count_change: int) -> None:
        """The middleware reported ``count_change`` more samples lost on the subscription."""
        if count_change > 0:
            with self._lock:
                self._event_lost += count_change

    @property
    def lost(self) -> int:
        return max(self._event_lost, self._gap_lost)

    def summary(self, now: float) -> InputLoss:
        """The totals and the counts of the last ``window_s`` seconds (since the oldest summary
        inside that span; the node asks once a second)."""
        with self._lock:
            point = (now, self._received, self.lost, self._event_lost)
            self._history.append(point)
            while len(self._history) > 1 and now - self._history[1][0] >= self.window_s:
                self._history.popleft()
            since, received0, lost0, event0 = self._history[0]
            received, lost, event = point[1:]
        source = "+".join(name for name, on in (("event", self.event_supported),
                                                 ("sequence", self._saw_sequence)) if on)
        return InputLoss(
            received=received, lost=lost, lost_in_transport=event,
            recent_received=received - received0, recent_lost=lost - lost0,
            recent_lost_in_transport=event - event0, window_s=now - since,
            source=source or "none")


def loss_warning(loss: InputLoss, profile_hint: str, min_fraction: float = 0.1,
                 min_lost: int = 5) -> str | None:
    """One sentence naming the loss and its fix, or None while the recent loss is small.

    ``profile_hint`` names the transport profile the camera process should use too.
    """
    fraction = loss.recent_fraction
    if fraction is None or fraction < min_fraction or loss.recent_lost < min_lost:
        return None
    sent = loss.recent_received + loss.recent_lost
    head = (f"{fraction:.0%} of camera frames lost before the node ({loss.recent_lost} of "
            f"{sent} in the last {loss.window_s:.0f} s)")
    if loss.recent_lost_in_transport * 2 >= loss.recent_lost:
        return (f"{head}, in DDS transport: start the camera driver with the same transport "
                f"profile ({profile_hint}), make it publish reliable, or use "
                "input_transport compressed")
    return (f"{head}, in the node's input queue: its executor fell behind the camera (CPU "
            "overloaded?); lower the camera rate or give the node a core of its own")


def profile_hint() -> str:
    """How the camera's process gets the node's transport profile, as an assignment to paste:
    the profile this process runs with, else the one installed with the package."""
    current = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if current:
        return f"FASTDDS_DEFAULT_PROFILES_FILE={current}"
    candidates = [Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME]
    for prefix in dict.fromkeys([sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(":")]):
        if prefix:
            candidates.append(Path(prefix) / "share" / "slimseg_ros" / "config" / PROFILE_NAME)
    found = next((p for p in candidates if p.is_file()), None)
    return f"FASTDDS_DEFAULT_PROFILES_FILE={found or 'share/slimseg_ros/config/' + PROFILE_NAME}"
