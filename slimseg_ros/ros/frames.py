"""The hand-off between the subscription callback and the inference worker: latest frame wins.

The callback only puts the newest message here; a frame that was still waiting when a newer one
came is dropped and counted, so the worker never works through a queue of stale frames.
:class:`FrameWorker` is that one worker thread. Pure Python (no ROS), thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, TypeVar

from ..data.pixels import compressed_to_rgb, image_to_rgb

__all__ = ["Frame", "FrameOptions", "FrameTiming", "FrameWorker", "LatestSlot"]

T = TypeVar("T")


@dataclass(frozen=True)
class Frame:
    """One received message and when it arrived."""

    msg: Any
    """The message as received (``sensor_msgs/Image`` or ``CompressedImage``)."""
    compressed: bool
    """True for ``CompressedImage``."""
    received: float
    """``time.monotonic()`` at arrival."""

    def to_rgb(self, max_pixels: int, notes: list[str]) -> Any:
        """The image as an HxWx3 uint8 array (a zero-copy view where it can be); what a
        decoder complained of is added to ``notes``.

        Raises:
            ImageRejected: not a usable image, or larger than ``max_pixels``.
        """
        msg = self.msg
        if self.compressed:
            return compressed_to_rgb(msg.format, msg.data, max_pixels, notes=notes)
        return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian), max_pixels)


@dataclass(frozen=True)
class FrameOptions:
    """What the worker reads of the parameters for every frame (replaced whole on a change, so
    a frame never sees half of a parameter set)."""

    max_pixels: int
    publish_color: bool
    publish_overlay: bool
    overlay_alpha: float

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> FrameOptions:
        """From the parameters' values (``max_image_pixels``, ``publish_color``, ...)."""
        return cls(int(values["max_image_pixels"]), bool(values["publish_color"]),
                   bool(values["publish_overlay"]), float(values["overlay_alpha"]))

    def updated(self, values: Mapping[str, Any]) -> FrameOptions:
        """These options with those of ``values`` (a parameter set) applied."""
        return FrameOptions.of({"max_image_pixels": self.max_pixels,
                                "publish_color": self.publish_color,
                                "publish_overlay": self.publish_overlay,
                                "overlay_alpha": self.overlay_alpha, **values})


@dataclass(frozen=True)
class FrameTiming:
    """Where one frame's time went (``time.monotonic()`` seconds), for benchmarks."""

    stamp_ns: int
    """The input header stamp, nanoseconds."""
    received: float
    started: float
    inference_s: float
    published: float
    width: float
    size: tuple[int, int]
    network_size: tuple[int, int] = (0, 0)
    """The operating point's network input size (H, W)."""


class LatestSlot(Generic[T]):
    """A one-place mailbox: ``put`` replaces what is there, ``take`` waits for something."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.put_count = 0
        """Items put since start."""
        self.dropped = 0
        """Items replaced before anyone took them."""

    def put(self, item: T) -> bool:
        """Store ``item``; True if it replaced one nobody took (that one is dropped)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self.put_count += 1
            if replaced:
                self.dropped += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds; None on timeout or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._item is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake every waiter; ``take`` returns what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Take items again after :meth:`close` (a managed node that is activated again)."""
        with self._cond:
            self._closed = False
            self._item = None

    @property
    def pending(self) -> bool:
        """Whether an item waits to be taken."""
        with self._cond:
            return self._item is not None

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed


class FrameWorker:
    """One thread answering the newest frame of ``slot`` until the slot is closed.

    Args:
        answer: called with each frame taken.
        failed: called with what ``answer`` raised (the thread goes on: a frame must never
            end it).
    """

    def __init__(self, slot: LatestSlot[Frame], answer: Callable[[Frame], None],
                 failed: Callable[[Exception], None]) -> None:
        self._slot = slot
        self._answer = answer
        self._failed = failed
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reopen the slot (empty) and start the thread."""
        self._slot.reopen()
        self._thread = threading.Thread(target=self._run, name="slimseg-worker", daemon=True)
        self._thread.start()

    def stop(self, join_s: float) -> None:
        """Close the slot; wait up to ``join_s`` for the frame in hand (not from the thread)."""
        self._slot.close()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(join_s)

    def _run(self) -> None:
        while True:
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                if self._slot.closed:
                    return
                continue
            try:
                self._answer(frame)
            except Exception as exc:  # noqa: BLE001 - the node must never die of a frame
                self._failed(exc)
