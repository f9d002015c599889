"""rosbag2 writing and reading with ``rosbags`` (mcap or sqlite3; no ROS installation needed).

Written bags hold dataset frames in time order, the way a camera driver and ``ros2 bag record``
would have stored them, and are readable by ``ros2 bag`` on Humble and Jazzy (rosbag2 metadata
version 8, message definitions from the Humble or Jazzy typestore, which agree for every type
used here):

- ``/camera/image_raw``: ``sensor_msgs/Image`` rgb8 (or ``.../compressed``, ``CompressedImage``),
  stamps at the frame rate;
- ``/camera/labels``: ``sensor_msgs/Image`` mono8 class ids (255 = ignore), the same stamps;
- ``/camera/camera_info``: ``sensor_msgs/CameraInfo`` (uncalibrated), optional;
- ``/battery_state``: ``sensor_msgs/BatteryState`` draining linearly, optional, 2 Hz.

Reading accepts any bag ``ros2 bag record`` makes (either storage, any encoding in
:data:`~slimseg_ros.eval.msgcodec.RAW_IMAGE_ENCODINGS`, compressed images), with topic names
given or found by type.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import (
    Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer

from .msgcodec import (
    BATTERY_TYPE, CAMERA_INFO_TYPE, COMPRESSED_TYPE, IMAGE_TYPE, IMAGE_TYPES, cdr_stamp_ns,
    decode_image, decode_labels, make_battery, make_camera_info, make_compressed_image,
    make_image, typestore_for)

__all__ = [
    "BagInfo", "BagMessage", "BagTopics", "DEFAULT_BATTERY_TOPIC", "DEFAULT_CAMERA_INFO_TOPIC",
    "DEFAULT_IMAGE_TOPIC", "DEFAULT_LABEL_TOPIC", "LabelledFrame", "STORAGES", "inspect_bag",
    "iter_labelled_frames", "iter_messages", "parse_battery", "read_labels", "resolve_topics",
    "write_dataset_bag", "write_frames_bag",
]

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_LABEL_TOPIC = "/camera/labels"
DEFAULT_BATTERY_TOPIC = "/battery_state"
DEFAULT_CAMERA_INFO_TOPIC = "/camera/camera_info"
#: Storage plugin names as ``ros2 bag record -s`` spells them.
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BATTERY_PERIOD_NS = 500_000_000  # battery drivers publish at a few Hz at most
# 2026-01-01T00:00:00Z: a plausible wall-clock start, far from 0 so stamps never look unset.
DEFAULT_START_NS = 1_767_225_600 * 1_000_000_000
_INFINITE = QosTime(9223372036, 854775807)  # RMW_DURATION_INFINITE, as rosbag2 records it
# What `ros2 bag record` stores for a reliable, volatile publisher. `ros2 bag play` parses this
# list; an empty string would fail to parse there, so every topic gets one profile.
RECORDED_QOS = (Qos(QosHistory.UNKNOWN, 0, QosReliability.RELIABLE, QosDurability.VOLATILE,
                    _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False),)


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


@dataclass
class _WriteTopics:
    image: str
    labels: str
    battery: str
    camera_info: str
    connections: dict[str, Any] = field(default_factory=dict)


def parse_battery(text: str) -> tuple[float, float]:
    """``"1.0:0.1"`` -> (1.0, 0.1): battery fraction at the first and at the last frame."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--battery must be START:END fractions such as 1.0:0.1, got {text!r}")
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise ValueError(f"--battery values are fractions in [0, 1] (not percent), got {text!r}")
    return start, end


def _prepare_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise ValueError(f"{out} exists already; choose a new path or pass --overwrite")
    if not (out / "metadata.yaml").is_file() or any(
            p.is_dir() or p.suffix not in (".mcap", ".db3", ".yaml", ".zstd")
            for p in out.iterdir()):
        raise ValueError(f"{out} exists and is not a rosbag2 directory; refusing to replace it")
    shutil.rmtree(out)


def write_frames_bag(
    out: str | Path,
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    *,
    rate_hz: float = 10.0,
    n_frames: int | None = None,
    storage: str = "mcap",
    battery: tuple[float, float] | None = None,
    camera_info: bool = True,
    compressed: str | None = None,
    encoding: str = "rgb8",
    frame_id: str = "camera",
    start_ns: int = DEFAULT_START_NS,
    distro: str = "humble",
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    label_topic: str = DEFAULT_LABEL_TOPIC,
    battery_topic: str = DEFAULT_BATTERY_TOPIC,
    camera_info_topic: str = DEFAULT_CAMERA_INFO_TOPIC,
    overwrite: bool = False,
) -> BagInfo:
    """Write (RGB, labels) pairs as a camera stream at ``rate_hz``.

    Args:
        out: bag directory to create.
        frames: HxWx3 uint8 RGB images with HxW uint8 labels (or None for no ground truth).
        rate_hz: frame rate; frame ``i`` is stamped ``start_ns + i / rate_hz``.
        n_frames: number of frames, needed with ``battery`` (the drain ends at the last frame).
        storage: ``mcap`` (default of ``ros2 bag`` since Iron) or ``sqlite3``.
        battery: (start, end) battery fraction, drained linearly over the frames; None = no
            battery topic.
        camera_info: also write an uncalibrated ``CameraInfo`` per frame.
        compressed: ``jpeg`` or ``png`` to store images as ``CompressedImage`` on
            ``<image_topic>/compressed`` (as ``image_transport`` does); None = raw images.
        encoding: raw image encoding, ``rgb8`` or ``bgr8`` (what many camera drivers send).
        frame_id: ``header.frame_id`` of camera messages.
        start_ns: stamp of the first frame.
        distro: typestore the message definitions come from (``humble`` or ``jazzy``).
        overwrite: replace an existing bag at ``out``.

    Returns:
        The :class:`BagInfo` of the written bag.
    """
    out = Path(out)
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; valid: {', '.join(STORAGES)}")
    if not (rate_hz > 0 and np.isfinite(rate_hz)):
        raise ValueError(f"rate must be a positive number of frames per second, got {rate_hz}")
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"encoding must be rgb8 or bgr8, got {encoding!r}")
    if battery is not None and not n_frames:
        raise ValueError("a draining battery needs the number of frames")
    store = typestore_for(distro)
    period_ns = int(round(1e9 / rate_hz))
    _prepare_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    topics = _WriteTopics(image_topic + ("/compressed" if compressed else ""), label_topic,
                          battery_topic, camera_info_topic)
    writer = Writer(out, version=8, storage_plugin=STORAGES[storage])
    writer.open()
    try:
        conns = topics.connections

        def add(topic: str, msgtype: str) -> Any:
            return writer.add_connection(topic, msgtype, typestore=store,
                                         offered_qos_profiles=RECORDED_QOS)

        conns["image"] = add(topics.image, COMPRESSED_TYPE if compressed else IMAGE_TYPE)
        if camera_info:
            conns["info"] = add(camera_info_topic, CAMERA_INFO_TYPE)
        if battery is not None:
            conns["battery"] = add(battery_topic, BATTERY_TYPE)
        next_battery_ns = start_ns
        end_ns = start_ns + (max(1, n_frames or 1) - 1) * period_ns
        last_battery_ns = -1
        count = 0
        for i, (rgb, labels) in enumerate(frames):
            stamp = start_ns + i * period_ns
            if battery is not None:
                # readings due up to this frame, and one exactly at the last frame
                due = []
                while next_battery_ns <= stamp:
                    due.append(next_battery_ns)
                    next_battery_ns += BATTERY_PERIOD_NS
                if stamp >= end_ns and max(due, default=last_battery_ns) < end_ns:
                    due.append(end_ns)
                for t in due:
                    frac = min(1.0, (t - start_ns) / max(1, end_ns - start_ns))
                    level = battery[0] + (battery[1] - battery[0]) * frac
                    writer.write(conns["battery"], t, store.serialize_cdr(
                        make_battery(store, level, t), BATTERY_TYPE))
                    last_battery_ns = t
            if compressed:
                msg = make_compressed_image(store, rgb, compressed, stamp, frame_id)
            else:
                pixels = rgb if encoding == "rgb8" else rgb[:, :, ::-1]
                msg = make_image(store, pixels, encoding, stamp, frame_id)
            writer.write(conns["image"], stamp, store.serialize_cdr(msg, msg.__msgtype__))
            if camera_info:
                info = make_camera_info(store, rgb.shape[0], rgb.shape[1], stamp, frame_id)
                writer.write(conns["info"], stamp, store.serialize_cdr(info, CAMERA_INFO_TYPE))
            if labels is not None:
                if "labels" not in conns:
                    conns["labels"] = add(label_topic, IMAGE_TYPE)
                if labels.shape != rgb.shape[:2]:
                    raise ValueError(f"frame {i}: labels {labels.shape} differ from image "
                                     f"{rgb.shape[:2]}")
                lab = make_image(store, labels, "mono8", stamp, frame_id)
                writer.write(conns["labels"], stamp, store.serialize_cdr(lab, IMAGE_TYPE))
            count += 1
        if count == 0:
            raise ValueError("no frames to write")
    except BaseException:
        writer.abort()
        shutil.rmtree(out, ignore_errors=True)
        raise
    writer.close()
    return inspect_bag(out)


def write_dataset_bag(
    dataset: Any,
    out: str | Path,
    *,
    indices: Sequence[int] | None = None,
    progress: bool = False,
    **options: Any,
) -> BagInfo:
    """Write frames of a dataset (``load(i) -> (rgb, labels)``) in order; see
    :func:`write_frames_bag` for ``options``."""
    idx = list(range(len(dataset))) if indices is None else list(indices)
    if not idx:
        raise ValueError("no frames selected from the dataset")
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]] = (dataset.load(i) for i in idx)
    if progress:
        from ..progress import progress_bar

        frames = progress_bar(frames, total=len(idx), desc="bag make", unit="frame")
    return write_frames_bag(out, frames, n_frames=len(idx), **options)


# -- reading -----------------------------------------------------------------------------------

def _open_reader(path: Path) -> AnyReader:
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
    reader = _open_reader(path)
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
    reader = _open_reader(Path(path))
    with reader:
        conns = [c for c in reader.connections if c.topic in set(topics)]
        for conn, log_ns, data in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, int(log_ns), bytes(data))


def read_labels(path: str | Path, topic: str, stamps: set[int] | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """(stamp_ns, HxW labels) of the label topic, optionally only of ``stamps``."""
    reader = _open_reader(Path(path))
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
    reader = _open_reader(Path(path))
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
