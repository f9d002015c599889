"""Reading rosbag2 bags with ``rosbags`` (mcap or sqlite3; no ROS installation needed).

Accepts any bag ``ros2 bag record`` makes (either storage, any encoding in
:data:`~slimseg_ros.data.pixels.RAW_ENCODINGS`, compressed images), with topic names
given or found by type. Used by the bag evaluation (``eval/``) and the rosbag frames dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rosbags.highlevel import AnyReader

from .msgcodec import (
    BATTERY_TYPE, COMPRESSED_TYPE, IMAGE_TYPES, cdr_stamp_ns, decode_image, decode_labels,
    typestore_for)

__all__ = [
    "BagInfo", "BagMessage", "BagTopics", "DEFAULT_BATTERY_TOPIC", "DEFAULT_IMAGE_TOPIC",
    "DEFAULT_LABEL_TOPIC", "LabelledFrame", "inspect_bag", "iter_labelled_frames",
    "iter_messages", "open_reader", "read_labels", "resolve_topics",
]

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_LABEL_TOPIC = "/camera/labels"
DEFAULT_BATTERY_TOPIC = "/battery_state"


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds: ``topics`` maps name -> (message type, count)."""

    path: Path
    storage: str
    topics: dict[str, tuple[str, int]]
    start_ns: int
    duration_ns: int

    def count(self, topic: str | None) -> int:
        """Messages on ``topic`` (0 if absent or None)."""
        return self.topics.get(topic, ("", 0))[1] if topic else 0

    def describe(self) -> str:
        """One line per topic, for error messages and ``--help`` style output."""
        return "; ".join(f"{name} ({typ}, {n})" for name, (typ, n) in sorted(self.topics.items()))


@dataclass(frozen=True)
class BagTopics:
    """The topics of one bag that an evaluation uses (``None`` = not present/used)."""

    image: str
    image_type: str
    labels: str | None = None
    battery: str | None = None

    @property
    def compressed(self) -> bool:
        return self.image_type == COMPRESSED_TYPE


@dataclass(frozen=True)
class LabelledFrame:
    """One camera frame with its ground truth (``labels`` None when the bag has none)."""

    stamp_ns: int
    rgb: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True)
class BagMessage:
    """One serialised message in log-time order, as the replay publishes it."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes

    @property
    def stamp_ns(self) -> int:
        return cdr_stamp_ns(self.data)


# -- reading -----------------------------------------------------------------------------------

def open_reader(path: Path) -> AnyReader:
    """A ``rosbags`` reader of the bag at ``path``, or a one-line error."""
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise ValueError(f"{path} is not a rosbag2 directory (no metadata.yaml)")
    try:
        return AnyReader([path], default_typestore=typestore_for("humble"))
    except Exception as err:  # rosbags raises its own error classes per storage
        raise ValueError(f"cannot open bag {path}: {err}") from None


def inspect_bag(path: str | Path) -> BagInfo:
    """Topics, types, counts and time span of a bag."""
    path = Path(path)
    reader = open_reader(path)
    with reader:
        topics: dict[str, tuple[str, int]] = {}
        for conn in reader.connections:
            typ, n = topics.get(conn.topic, (conn.msgtype, 0))
            topics[conn.topic] = (typ, n + conn.msgcount)
        storage = "mcap" if any(path.glob("*.mcap")) else "sqlite3"
        # rosbags' end_time is one nanosecond after the last message
        return BagInfo(path, storage, topics, int(reader.start_time),
                       int(max(0, reader.end_time - 1 - reader.start_time)))


def resolve_topics(info: BagInfo, image: str | None = None, labels: str | None = None,
                   battery: str | None = None) -> BagTopics:
    """Choose the image, label and battery topics of a bag; given names must exist.

    Unnamed topics are found by the default names, then by type: the only image topic that is
    not the labels, the only ``BatteryState`` topic.
    """
    def check(name: str, types: tuple[str, ...], what: str) -> str:
        if name not in info.topics:
            raise ValueError(f"{what} topic {name!r} is not in {info.path}; it has: "
                             f"{info.describe()}")
        if info.topics[name][0] not in types:
            raise ValueError(f"{what} topic {name!r} holds {info.topics[name][0]}, expected "
                             f"{' or '.join(types)}")
        return name

    image_topics = [t for t, (typ, _) in info.topics.items() if typ in IMAGE_TYPES]
    if labels is not None:
        labels = check(labels, IMAGE_TYPES, "label")
    elif DEFAULT_LABEL_TOPIC in info.topics:
        labels = check(DEFAULT_LABEL_TOPIC, IMAGE_TYPES, "label")
    if image is not None:
        image = check(image, IMAGE_TYPES, "image")
    else:
        for candidate in (DEFAULT_IMAGE_TOPIC, DEFAULT_IMAGE_TOPIC + "/compressed"):
            if candidate in info.topics:
                image = check(candidate, IMAGE_TYPES, "image")
                break
        else:
            others = [t for t in image_topics if t != labels and "label" not in t]
            if len(others) != 1:
                raise ValueError(
                    f"cannot tell which topic holds the camera images in {info.path} "
                    f"(image topics: {', '.join(image_topics) or 'none'}); name it with "
                    f"--image-topic")
            image = others[0]
    if image == labels:
        raise ValueError(f"the image and label topics are the same ({image})")
    if battery is not None:
        battery = check(battery, (BATTERY_TYPE,), "battery")
    else:
        batteries = [t for t, (typ, _) in info.topics.items() if typ == BATTERY_TYPE]
        battery = batteries[0] if len(batteries) == 1 else None
    return BagTopics(image=image, image_type=info.topics[image][0], labels=labels,
                     battery=battery)


def iter_messages(path: str | Path, topics: Sequence[str]) -> Iterator[BagMessage]:
    """Serialised messages of ``topics`` in log-time order (what ``ros2 bag play`` sends)."""
    reader = open_reader(Path(path))
    with reader:
        conns = [c for c in reader.connections if c.topic in set(topics)]
        for conn, log_ns, data in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, int(log_ns), bytes(data))


def read_labels(path: str | Path, topic: str, stamps: set[int] | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """(stamp_ns, HxW labels) of the label topic, optionally only of ``stamps``."""
    reader = open_reader(Path(path))
    with reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, data in reader.messages(connections=conns):
            stamp = cdr_stamp_ns(data)
            if stamps is not None and stamp not in stamps:
                continue
            yield stamp, decode_labels(reader.deserialize(data, conn.msgtype), conn.msgtype)


def iter_labelled_frames(path: str | Path, topics: BagTopics, *, require_labels: bool = True,
                         max_pending: int = 1000) -> Iterator[LabelledFrame]:
    """Camera frames paired with their ground truth by header stamp, in log-time order.

    A frame is yielded once both its image and its labels are read (a recorder may store them
    in either order). With ``require_labels``, images without labels are skipped; otherwise
    they are yielded with ``labels=None`` once ``max_pending`` newer messages passed or the bag
    ends. Images are decoded only when yielded.
    """
    reader = open_reader(Path(path))
    names = [topics.image] + ([topics.labels] if topics.labels else [])
    pending_images: dict[int, tuple[int, bytes, str]] = {}
    pending_labels: dict[int, np.ndarray] = {}
    with reader:
        conns = [c for c in reader.connections if c.topic in names]

        def frame(stamp: int, data: bytes, msgtype: str, labels: np.ndarray | None):
            rgb = decode_image(reader.deserialize(data, msgtype), msgtype)
            if labels is not None and labels.shape != rgb.shape[:2]:
                raise ValueError(f"labels at stamp {stamp} are {labels.shape[1]}x"
                                 f"{labels.shape[0]} but the image is {rgb.shape[1]}x"
                                 f"{rgb.shape[0]}")
            return LabelledFrame(stamp, rgb, labels)

        for n, (conn, _, data) in enumerate(reader.messages(connections=conns)):
            stamp = cdr_stamp_ns(data)
            if conn.topic == topics.image:
                labels = pending_labels.pop(stamp, None)
                if labels is not None:
                    yield frame(stamp, bytes(data), conn.msgtype, labels)
                else:
                    pending_images[stamp] = (n, bytes(data), conn.msgtype)
            else:
                labels = decode_labels(reader.deserialize(data, conn.msgtype), conn.msgtype)
                if stamp in pending_images:
                    _, img, typ = pending_images.pop(stamp)
                    yield frame(stamp, img, typ, labels)
                else:
                    pending_labels[stamp] = labels
            # bound memory: give up on partners that never came
            for s in [s for s, (m, _, _) in pending_images.items() if n - m > max_pending]:
                _, img, typ = pending_images.pop(s)
                if not require_labels:
                    yield frame(s, img, typ, None)
            if len(pending_labels) > max_pending:
                pending_labels.pop(next(iter(pending_labels)))
        if not require_labels:
            for s, (_, img, typ) in sorted(pending_images.items()):
                yield frame(s, img, typ, None)
