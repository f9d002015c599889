"""rosbag2 writing with ``rosbags`` (mcap or sqlite3; no ROS installation needed).

Written bags hold dataset frames in time order, the way a camera driver and ``ros2 bag record``
would have stored them, and are readable by ``ros2 bag`` on Humble and Jazzy (rosbag2 metadata
version 8, message definitions from the Humble or Jazzy typestore, which agree for every type
used here):

- ``/camera/image_raw``: ``sensor_msgs/Image`` rgb8 (or ``.../compressed``, ``CompressedImage``),
  stamps at the frame rate;
- ``/camera/labels``: ``sensor_msgs/Image`` mono8 class ids (255 = ignore), the same stamps;
- ``/camera/camera_info``: ``sensor_msgs/CameraInfo`` (uncalibrated), optional;
- ``/battery_state``: ``sensor_msgs/BatteryState`` draining linearly, optional, 2 Hz.

Reading is :mod:`slimseg_ros.data.bagread`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from rosbags.interfaces import (
    Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer

from ..data.bagread import (
    DEFAULT_BATTERY_TOPIC, DEFAULT_IMAGE_TOPIC, DEFAULT_LABEL_TOPIC, BagInfo, inspect_bag)
from ..data.msgcodec import (
    BATTERY_TYPE, CAMERA_INFO_TYPE, COMPRESSED_TYPE, IMAGE_TYPE, make_battery, make_camera_info,
    make_compressed_image, make_image, typestore_for)

__all__ = [
    "DEFAULT_CAMERA_INFO_TOPIC", "DEFAULT_START_NS", "STORAGES", "parse_battery",
    "write_dataset_bag", "write_frames_bag",
]

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
