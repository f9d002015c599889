"""ROS messages <-> numpy for bags, without ROS: ``rosbags`` message objects and CDR bytes.

Bags are written and read with ``rosbags`` typestores (Humble and Jazzy share the definitions of
every message used here), so nothing in this module needs rclpy. The replay publishes the CDR
bytes straight from the bag; :func:`cdr_stamp_ns` and :func:`restamp_cdr` read and rewrite the
header stamp in those bytes without deserialising megabytes of pixels.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

__all__ = [
    "BATTERY_TYPE", "CAMERA_INFO_TYPE", "COMPRESSED_TYPE", "IMAGE_TYPE", "IMAGE_TYPES",
    "DISTROS", "RAW_IMAGE_ENCODINGS", "POWER_SUPPLY_STATUS_DISCHARGING",
    "cdr_stamp_ns", "decode_image", "decode_labels", "make_battery", "make_camera_info",
    "make_compressed_image", "make_image", "restamp_cdr", "split_ns", "typestore_for",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
BATTERY_TYPE = "sensor_msgs/msg/BatteryState"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
#: Typestores for the ROS 2 distributions the bags are meant for (same definitions here).
DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
#: Raw encodings the readers understand (those the node accepts, and 8UC4): name -> bytes
#: per pixel. mono16 keeps its high byte (cv_bridge's 16 -> 8 bit rule, as the node does);
#: yuv422/uyvy is UYVY and yuv422_yuy2/yuyv is YUYV, as in sensor_msgs/image_encodings.hpp.
RAW_IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1,
                       "8uc3": 3, "8uc4": 4, "mono16": 2, "16uc1": 2, "yuv422": 2, "uyvy": 2,
                       "yuv422_yuy2": 2, "yuyv": 2}
_EIGHT_BIT_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1,
                       "8uc3": 3, "8uc4": 4}
_YUV = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2}
POWER_SUPPLY_STATUS_DISCHARGING = 2
_COMPRESSED_CODECS = {"jpeg": ".jpg", "png": ".png"}
_TYPESTORES: dict[str, Any] = {}


def typestore_for(distro: str = "humble") -> Any:
    """The ``rosbags`` typestore of ``distro`` (``humble`` or ``jazzy``), cached."""
    key = str(distro).lower()
    if key not in DISTROS:
        raise ValueError(f"unknown ROS distro {distro!r}; valid: {', '.join(DISTROS)}")
    if key not in _TYPESTORES:
        _TYPESTORES[key] = get_typestore(DISTROS[key])
    return _TYPESTORES[key]


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """Nanoseconds since the epoch -> (sec, nanosec) of a ``builtin_interfaces/Time``."""
    if stamp_ns < 0:
        raise ValueError(f"stamps must not be negative, got {stamp_ns} ns")
    return int(stamp_ns // 1_000_000_000), int(stamp_ns % 1_000_000_000)


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
    if _EIGHT_BIT_CHANNELS.get(encoding.lower()) != channels:
        raise ValueError(f"cannot store a {channels}-channel array as {encoding!r}")
    height, width = arr.shape[:2]
    return store.types[IMAGE_TYPE](
        header=_header(store, stamp_ns, frame_id), height=height, width=width,
        encoding=encoding, is_bigendian=0, step=width * channels, data=arr.reshape(-1))


def make_compressed_image(store: Any, rgb: np.ndarray, codec: str, stamp_ns: int,
                          frame_id: str, jpeg_quality: int = 95) -> Any:
    """A ``sensor_msgs/CompressedImage`` as ``image_transport``'s compressed plugin writes it."""
    if codec not in _COMPRESSED_CODECS:
        raise ValueError(f"unknown image codec {codec!r}; valid: {', '.join(_COMPRESSED_CODECS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else []
    ok, buf = cv2.imencode(_COMPRESSED_CODECS[codec], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {codec}")
    return store.types[COMPRESSED_TYPE](
        header=_header(store, stamp_ns, frame_id), format=f"rgb8; {codec} compressed bgr8",
        data=buf.reshape(-1))


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


def stamp_of(msg: Any) -> int:
    """Header stamp of a deserialised message in nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _raw_pixels(msg: Any, what: str) -> tuple[np.ndarray, str]:
    """HxWxB bytes of each pixel (row padding dropped) and the lower-case encoding."""
    encoding = str(msg.encoding).lower()
    per_pixel = RAW_IMAGE_ENCODINGS.get(encoding)
    if per_pixel is None:
        raise ValueError(f"{what} has encoding {msg.encoding!r}; supported: "
                         f"{', '.join(sorted(RAW_IMAGE_ENCODINGS))} or a CompressedImage")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if h < 1 or w < 1:
        raise ValueError(f"{what} is empty ({w}x{h})")
    if step < w * per_pixel or data.size < step * h:
        raise ValueError(f"{what} {w}x{h} {msg.encoding} has step {step} and {data.size} bytes; "
                         f"expected step >= {w * per_pixel} and {step * h} bytes")
    if encoding in _YUV and w % 2:
        raise ValueError(f"{what} in {msg.encoding} needs an even width, got {w}")
    rows = data[: step * h].reshape(h, step)[:, : w * per_pixel]
    return rows.reshape(h, w, per_pixel), encoding


def _owned(array: np.ndarray) -> np.ndarray:
    # Deserialised data is a read-only view of the bag's buffer; torch and OpenCV want to own.
    return array if array.flags.writeable and array.flags.c_contiguous else array.copy()


def decode_image(msg: Any, msgtype: str = IMAGE_TYPE) -> np.ndarray:
    """A ``sensor_msgs/Image`` or ``CompressedImage`` as an HxWx3 uint8 RGB array."""
    if msgtype == COMPRESSED_TYPE:
        fmt = str(msg.format).lower()
        if "compresseddepth" in fmt:
            raise ValueError(
                f"compressed depth images are not camera images (format {msg.format!r})")
        bgr = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if msgtype != IMAGE_TYPE:
        raise ValueError(
            f"{msgtype} is not an image type; expected one of {', '.join(IMAGE_TYPES)}")
    pixels, encoding = _raw_pixels(msg, "image")
    if encoding in ("mono16", "16uc1"):
        order = ">u2" if msg.is_bigendian else "<u2"
        high = (np.ascontiguousarray(pixels).view(order)[:, :, 0] >> 8).astype(np.uint8)
        return np.repeat(high[:, :, None], 3, axis=2)
    if encoding in _YUV:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV[encoding])
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if encoding in ("rgb8", "rgba8"):
        return _owned(pixels[:, :, :3])
    # bgr8, bgra8 and OpenCV's 8UC3/8UC4, which hold BGR(A) by convention
    return _owned(pixels[:, :, 2::-1])


def decode_labels(msg: Any, msgtype: str = IMAGE_TYPE) -> np.ndarray:
    """A label image (``mono8``/``8UC1`` Image, or a lossless single-channel CompressedImage)
    as an HxW uint8 array of class ids."""
    if msgtype == COMPRESSED_TYPE:
        labels = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
            raise ValueError(f"compressed labels must decode to one 8-bit channel "
                             f"(format {msg.format!r})")
        return labels
    pixels, encoding = _raw_pixels(msg, "label image")
    if encoding not in ("mono8", "8uc1"):
        raise ValueError(
            f"label images must be mono8 (one class id per pixel), got {msg.encoding!r}")
    return _owned(pixels[:, :, 0])


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
