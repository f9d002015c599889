"""ROS messages <-> numpy for bags, without ROS: ``rosbags`` message objects and CDR bytes.

Bags are written and read with ``rosbags`` typestores (Humble and Jazzy share the definitions of
every message used here), so nothing in this module needs rclpy. Pixels are read and written by
:mod:`slimseg_ros.data.pixels`, the codec the node uses too. The replay publishes the CDR bytes
straight from the bag; :func:`cdr_stamp_ns` and :func:`restamp_cdr` read and rewrite the header
stamp in those bytes without deserialising megabytes of pixels.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore

from .pixels import (
    compressed_to_labels, compressed_to_rgb, encode_compressed, image_to_labels, image_to_rgb,
    layout)
from .stamps import split_ns

__all__ = [
    "BATTERY_TYPE", "CAMERA_INFO_TYPE", "COMPRESSED_TYPE", "IMAGE_TYPE", "IMAGE_TYPES",
    "DISTROS", "POWER_SUPPLY_STATUS_DISCHARGING",
    "cdr_stamp_ns", "decode_image", "decode_labels", "make_battery", "make_camera_info",
    "make_compressed_image", "make_image", "restamp_cdr", "typestore_for",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
BATTERY_TYPE = "sensor_msgs/msg/BatteryState"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
#: Typestores for the ROS 2 distributions the bags are meant for (same definitions here).
DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
POWER_SUPPLY_STATUS_DISCHARGING = 2
_TYPESTORES: dict[str, Any] = {}


def typestore_for(distro: str = "humble") -> Any:
    """The ``rosbags`` typestore of ``distro`` (``humble`` or ``jazzy``), cached."""
    key = str(distro).lower()
    if key not in DISTROS:
        raise ValueError(f"unknown ROS distro {distro!r}; valid: {', '.join(DISTROS)}")
    if key not in _TYPESTORES:
        _TYPESTORES[key] = get_typestore(DISTROS[key])
    return _TYPESTORES[key]


def _header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = split_ns(stamp_ns)
    time_type = store.types["builtin_interfaces/msg/Time"]
    return store.types["std_msgs/msg/Header"](stamp=time_type(sec=sec, nanosec=nanosec),
                                               frame_id=frame_id)


def make_image(store: Any, array: np.ndarray, encoding: str, stamp_ns: int,
               frame_id: str) -> Any:
    """A ``sensor_msgs/Image`` holding ``array`` (HxW mono8 or HxWxC 8-bit) as ``encoding``."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    _, wanted, depth = layout(encoding)
    if (wanted, depth) != (channels, 1):
        raise ValueError(f"cannot store a {channels}-channel array as {encoding!r}")
    height, width = arr.shape[:2]
    return store.types[IMAGE_TYPE](
        header=_header(store, stamp_ns, frame_id), height=height, width=width,
        encoding=encoding, is_bigendian=0, step=width * channels, data=arr.reshape(-1))


def make_compressed_image(store: Any, rgb: np.ndarray, codec: str, stamp_ns: int,
                          frame_id: str, jpeg_quality: int = 95) -> Any:
    """A ``sensor_msgs/CompressedImage`` as ``image_transport``'s compressed plugin writes it."""
    data = encode_compressed(rgb, codec, jpeg_quality)
    return store.types[COMPRESSED_TYPE](
        header=_header(store, stamp_ns, frame_id), format=f"rgb8; {codec} compressed bgr8",
        data=np.frombuffer(data, np.uint8))


def make_battery(store: Any, percentage: float, stamp_ns: int, frame_id: str = "") -> Any:
    """A discharging ``sensor_msgs/BatteryState`` with ``percentage`` in [0, 1]."""
    nan = float("nan")
    return store.types[BATTERY_TYPE](
        header=_header(store, stamp_ns, frame_id), voltage=nan, temperature=nan, current=nan,
        charge=nan, capacity=nan, design_capacity=nan, percentage=float(percentage),
        power_supply_status=POWER_SUPPLY_STATUS_DISCHARGING, power_supply_health=0,
        power_supply_technology=0, present=True, cell_voltage=np.zeros(0, np.float32),
        cell_temperature=np.zeros(0, np.float32), location="", serial_number="")


def make_camera_info(store: Any, height: int, width: int, stamp_ns: int, frame_id: str) -> Any:
    """An uncalibrated ``sensor_msgs/CameraInfo`` (K all zero, as REP 104 allows) of one size."""
    roi = store.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return store.types[CAMERA_INFO_TYPE](
        header=_header(store, stamp_ns, frame_id), height=int(height), width=int(width),
        distortion_model="plumb_bob", d=np.zeros(5, np.float64), k=np.zeros(9, np.float64),
        r=np.eye(3).reshape(-1), p=np.zeros(12, np.float64), binning_x=0, binning_y=0, roi=roi)


def _owned(array: np.ndarray) -> np.ndarray:
    # Deserialised data is a read-only view of the bag's buffer; torch and OpenCV want to own.
    return array if array.flags.writeable and array.flags.c_contiguous else array.copy()


def decode_image(msg: Any, msgtype: str = IMAGE_TYPE) -> np.ndarray:
    """A ``sensor_msgs/Image`` or ``CompressedImage`` as an HxWx3 uint8 RGB array (owned).

    Raises:
        ImageRejected: (a ``ValueError``) the pixels cannot be read; the message says why.
    """
    if msgtype == COMPRESSED_TYPE:
        return compressed_to_rgb(str(msg.format), msg.data)
    if msgtype != IMAGE_TYPE:
        raise ValueError(
            f"{msgtype} is not an image type; expected one of {', '.join(IMAGE_TYPES)}")
    return _owned(image_to_rgb(str(msg.encoding), msg.height, msg.width, msg.step, msg.data,
                               bool(msg.is_bigendian)))


def decode_labels(msg: Any, msgtype: str = IMAGE_TYPE) -> np.ndarray:
    """A label image (``mono8``/``8UC1`` Image, or a lossless single-channel CompressedImage)
    as an HxW uint8 array of class ids (owned)."""
    if msgtype == COMPRESSED_TYPE:
        return compressed_to_labels(str(msg.format), msg.data)
    return _owned(image_to_labels(str(msg.encoding), msg.height, msg.width, msg.step, msg.data))


# -- CDR bytes ---------------------------------------------------------------------------------
# Every message here starts with std_msgs/Header, whose stamp (int32 sec, uint32 nanosec) sits
# right after the 4-byte CDR encapsulation header, aligned, in the byte order that header names.

def _cdr_order(data: bytes | memoryview) -> str:
    if len(data) < 12 or data[0] != 0 or data[1] not in (0, 1):
        raise ValueError("not a CDR-serialised ROS 2 message with a header")
    return "<" if data[1] == 1 else ">"


def cdr_stamp_ns(data: bytes | memoryview) -> int:
    """The header stamp (ns) of a CDR-serialised message that starts with a ``Header``."""
    sec, nanosec = struct.unpack_from(_cdr_order(data) + "iI", data, 4)
    return sec * 1_000_000_000 + nanosec


def restamp_cdr(data: bytes | memoryview, stamp_ns: int) -> bytes:
    """A copy of CDR ``data`` (message starting with a ``Header``) with the stamp replaced."""
    order = _cdr_order(data)
    out = bytearray(data)
    struct.pack_into(order + "iI", out, 4, *split_ns(stamp_ns))
    return bytes(out)
