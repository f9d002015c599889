"""Image messages to numpy RGB arrays and label arrays back to messages, with no cv_bridge.

Reading never copies when it does not have to (``np.frombuffer`` on the message buffer), and
writing fills ``data`` with ``bytes`` (``arr.tobytes()``: 0.3 ms for 1280x720 rgb8, where a
memoryview costs 90 ms in rclpy's setter). Every malformed message raises
:class:`ImageRejected`, a ``ValueError`` whose text says what is wrong and what is allowed, so
the node can count it, warn and carry on.

The functions take the message fields rather than the message, so they work on
``sensor_msgs/Image`` from rclpy and on the same-named types of ``rosbags`` alike.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

__all__ = [
    "ImageRejected", "RAW_ENCODINGS", "image_to_rgb", "compressed_to_rgb", "peek_compressed_size",
    "fill_image", "colorize", "palette_lut", "blend",
]

# encoding -> (channels, bytes per channel); the conversion to RGB is in _to_rgb.
_LAYOUTS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1),
    "8UC1": (1, 1), "8UC3": (3, 1), "mono16": (1, 2), "16UC1": (1, 2),
    # YUV 4:2:2 packs two pixels into four bytes: 2 bytes per pixel.
    "yuv422": (2, 1), "uyvy": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1),
}
RAW_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
"""Raw ``sensor_msgs/Image`` encodings the node reads (8UC3 is taken as bgr8, as OpenCV does)."""


class ImageRejected(ValueError):
    """A message that cannot be turned into an image; ``kind`` names the problem for counters.

    Kinds: ``encoding``, ``empty``, ``size`` (data/step/shape mismatch), ``too_large``,
    ``decode``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _check_pixels(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageRejected(
            "empty", f"empty image ({width}x{height}): width and height must be > 0")
    if max_pixels > 0 and height * width > max_pixels:
        raise ImageRejected(
            "too_large", f"image {width}x{height} has {height * width} pixels, more than "
            f"max_image_pixels = {max_pixels}")


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: Any,
                 is_bigendian: bool = False, max_pixels: int = 0) -> np.ndarray:
    """The pixels of a raw ``sensor_msgs/Image`` as an HxWx3 uint8 RGB array.

    rgb8 with no row padding is returned without a copy (read-only view of ``data``). mono16 is
    scaled to 8 bits by dropping the low byte (cv_bridge's 16 -> 8 bit rule); yuv422 is UYVY and
    yuv422_yuy2 is YUYV, as in ``sensor_msgs/image_encodings.hpp``.

    Args:
        encoding, height, width, step, data, is_bigendian: the message fields.
        max_pixels: reject images with more pixels than this (0 = no limit).

    Raises:
        ImageRejected: unknown encoding, empty or too large image, or ``data``/``step`` that do
            not match the size.
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageRejected(
            "encoding",
            f"unsupported encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)}")
    height, width, step = int(height), int(width), int(step)
    _check_pixels(height, width, max_pixels)
    channels, depth = layout
    row = width * channels * depth
    if step < row:
        raise ImageRejected(
            "size", f"step {step} is shorter than a row of {width} {encoding} pixels "
            f"({row} bytes)")
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv") and width % 2:
        raise ImageRejected("size", f"{encoding} needs an even width, got {width}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageRejected(
            "size", f"data has {buf.size} bytes, expected step * height = {step} * {height} = "
            f"{step * height}")
    rows = buf.reshape(height, step)[:, :row]
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        # .view needs contiguous rows; a padded step gets one copy here.
        pixels16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        gray = (pixels16 >> 8).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels)
    return _to_rgb(encoding, pixels)


def _to_rgb(encoding: str, pixels: np.ndarray) -> np.ndarray:
    if encoding == "rgb8":
        return pixels
    # cv2 needs contiguous rows; only a padded step makes this copy.
    src = np.ascontiguousarray(pixels)
    if encoding in ("bgr8", "8UC3"):
        return cv2.cvtColor(src, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(src, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(src, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(src[:, :, 0], cv2.COLOR_GRAY2RGB)
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(src, cv2.COLOR_YUV2RGB_UYVY)
    return cv2.cvtColor(src, cv2.COLOR_YUV2RGB_YUY2)  # yuv422_yuy2, yuyv


def peek_compressed_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header without decoding, or None if not found.

    Lets the node refuse an oversized image before ``cv2.imdecode`` allocates it.
    """
    head = bytes(data[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(height), int(width)
    if not head.startswith(b"\xff\xd8"):
        return None
    view = memoryview(data)
    i, n = 2, len(view)
    while i + 9 < n:
        if view[i] != 0xFF:
            return None
        marker = view[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = (view[i + 2] << 8) | view[i + 3]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = (view[i + 5] << 8) | view[i + 6]
            width = (view[i + 7] << 8) | view[i + 8]
            return height, width
        i += 2 + length
    return None


def compressed_to_rgb(fmt: str, data: Any, max_pixels: int = 0) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) to HxWx3 uint8 RGB.

    Raises:
        ImageRejected: empty data, a depth image (``compressedDepth``), a size over
            ``max_pixels``, or bytes OpenCV cannot decode.
    """
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ImageRejected(
            "encoding", f"compressed format {fmt!r} is a depth image; the node segments colour "
            f"or grey images (jpeg, png)")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageRejected("empty", "empty compressed image (no data)")
    size = peek_compressed_size(buf.data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV raises for some corrupt headers instead of returning None
        raise ImageRejected("decode", f"cannot decode compressed image ({fmt or 'no format'}): "
                            f"{str(exc).strip().splitlines()[-1]}") from None
    if bgr is None:
        raise ImageRejected(
            "decode", f"cannot decode compressed image ({fmt or 'no format'}, {buf.size} bytes); "
            f"expected JPEG or PNG data")
    _check_pixels(bgr.shape[0], bgr.shape[1], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def fill_image(msg: Any, array: np.ndarray, encoding: str) -> Any:
    """Fill ``msg`` (a ``sensor_msgs/Image``) from an HxW or HxWxC uint8 array; returns it.

    The header is left alone: the caller copies the input's header.
    """
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC uint8 array, got {array.dtype} {array.shape}")
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.shape[1] * (array.shape[2] if array.ndim == 3 else 1))
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def colorize(labels: np.ndarray, palette_lut: np.ndarray) -> np.ndarray:
    """HxW labels to HxWx3 RGB through a (256, 3) uint8 lookup table."""
    return palette_lut[labels]


def palette_lut(palette: Any) -> np.ndarray:
    """A (256, 3) uint8 table: class i -> palette[i], every other label -> black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    lut[: len(colours)] = colours
    return lut


def blend(rgb: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * rgb + alpha * color`` as uint8 (the overlay image)."""
    return cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, color, alpha, 0.0)
