"""Camera frames of a rosbag2 bag as a segmentation dataset (train, evaluate or recalibrate on
what the robot actually saw).

Images and label images pair by header stamp, as ``slimseg bag eval`` pairs them. A bag is one
recording, and consecutive frames are near-duplicates, so splits are temporal: ``train`` is the
first ``1 - val_fraction`` of the frames in time, ``val`` the rest, ``all`` everything; a random
split would put a frame's neighbour in the other split and flatter the validation score.

Frames are read on demand with an index built in one pass over the bag (stamps only, no pixels
decoded), so a bag larger than memory works; each process (DataLoader workers included) opens
its own reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimseg_ros.data.bagread import inspect_bag, open_reader, resolve_topics
from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import ClassSpec, load_class_spec
from slimseg_ros.data.msgcodec import cdr_stamp_ns, decode_image, decode_labels

__all__ = ["ROSBAG_SPLITS", "RosbagFrames"]

ROSBAG_SPLITS = ("all", "train", "val")


@dataclass(frozen=True)
class _Message:
    """Where one message is: its topic, log time and header stamp."""

    topic: str
    log_ns: int
    stamp_ns: int


class RosbagFrames(SegmentationDataset):
    """Image frames of a bag with their labels, paired by header stamp.

    Args:
        bag: rosbag2 directory (mcap or sqlite3).
        split: ``all``, ``train`` or ``val`` (temporal, see the module docstring).
        image_topic, labels_topic: default: found as ``slimseg bag eval`` finds them
            (``/camera/image_raw``, ``/camera/labels``, else by type).
        classes: class spec of the labels: built-in name or YAML path (default ``camvid``).
        val_fraction: share of the frames, at the end of the recording, that form ``val``.
        require_labels: if False, frames without labels are kept with an all-ignore label
            (enough for BN recalibration); else they are left out.
        transform: optional ``transform(image, label)``.

    Raises:
        ValueError: a bad split or fraction, no label topic while labels are required, no
            frame to use, or a bag that cannot be read; FileNotFoundError: no bag there.
    """

    def __init__(
        self,
        bag: str | Path,
        split: str = "all",
        *,
        image_topic: str | None = None,
        labels_topic: str | None = None,
        classes: str | Path | ClassSpec = "camvid",
        val_fraction: float = 0.2,
        require_labels: bool = True,
        transform: Transform | None = None,
    ) -> None:
        if split not in ROSBAG_SPLITS:
            raise ValueError(f"rosbag split must be one of {', '.join(ROSBAG_SPLITS)}, "
                             f"got {split!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction:g}")
        self.class_spec = classes if isinstance(classes, ClassSpec) else load_class_spec(classes)
        self.transform = transform
        info = inspect_bag(bag)
        self.path = info.path
        self.topics = resolve_topics(info, image_topic, labels_topic)
        if self.topics.labels is None and require_labels:
            raise ValueError(
                f"{info.path} has no label topic (looked for /camera/labels; name it with "
                f"labels_topic, or pass require_labels=False for unlabelled frames); it has: "
                f"{info.describe()}")
        frames = self._index(require_labels)
        if split != "all":
            cut = round(len(frames) * (1.0 - val_fraction))
            frames = frames[:cut] if split == "train" else frames[cut:]
        if not frames:
            raise ValueError(f"no {split!r} frames in {info.path}: {self._why_empty(info)}")
        self.frames: list[tuple[_Message, _Message | None]] = frames
        self._reader: Any = None
        self._reader_pid = -1

    def _index(self, require_labels: bool) -> list[tuple[_Message, _Message | None]]:
        """(image, labels or None) per frame in time order, from one pass over the stamps."""
        images: dict[int, _Message] = {}
        labels: dict[int, _Message] = {}
        names = {self.topics.image, self.topics.labels} - {None}
        with open_reader(self.path) as reader:
            conns = [c for c in reader.connections if c.topic in names]
            for conn, log_ns, data in reader.messages(connections=conns):
                msg = _Message(conn.topic, int(log_ns), cdr_stamp_ns(data))
                side = images if conn.topic == self.topics.image else labels
                side.setdefault(msg.stamp_ns, msg)  # a repeated stamp: the first one counts
        frames = [(img, labels.get(stamp)) for stamp, img in images.items()]
        if require_labels:
            frames = [(img, lab) for img, lab in frames if lab is not None]
        frames.sort(key=lambda f: f[0].log_ns)
        return frames

    def _why_empty(self, info: Any) -> str:
        if self.topics.labels is None:
            return f"{self.topics.image} has no messages"
        return (f"no image on {self.topics.image} ({info.count(self.topics.image)} messages) "
                f"has a label with the same stamp on {self.topics.labels} "
                f"({info.count(self.topics.labels)} messages)")

    def __len__(self) -> int:
        return len(self.frames)

    def name(self, index: int) -> str:
        return str(self.frames[self._check_index(index)][0].stamp_ns)

    def stamp_ns(self, index: int) -> int:
        """Header stamp of frame ``index`` (nanoseconds)."""
        return self.frames[self._check_index(index)][0].stamp_ns

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_msg, label_msg = self.frames[index]
        rgb = decode_image(*self._read(image_msg))
        if label_msg is None:
            return rgb, np.full(rgb.shape[:2], self.ignore_index, dtype=np.uint8)
        labels = decode_labels(*self._read(label_msg))
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"labels at stamp {image_msg.stamp_ns} are {labels.shape[1]}x"
                             f"{labels.shape[0]} but the image is {rgb.shape[1]}x{rgb.shape[0]}")
        return rgb, labels

    def _read(self, where: _Message) -> tuple[Any, str]:
        """The deserialised message at ``where`` and its type."""
        reader = self._open()
        conns = [c for c in reader.connections if c.topic == where.topic]
        for conn, _, data in reader.messages(connections=conns, start=where.log_ns,
                                             stop=where.log_ns + 1):
            if cdr_stamp_ns(data) == where.stamp_ns:
                return reader.deserialize(data, conn.msgtype), conn.msgtype
        raise ValueError(f"{self.path} changed while in use: no message on {where.topic} "
                         f"at log time {where.log_ns}")

    def _open(self) -> Any:
        # A reader (an sqlite connection or an open mcap file) must not cross a fork: a
        # DataLoader worker opens its own.
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = open_reader(self.path)
            self._reader.open()
            self._reader_pid = os.getpid()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"], state["_reader_pid"] = None, -1
        return state

    def __del__(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None and self._reader_pid == os.getpid():
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing at interpreter exit may fail; harmless
                pass
