"""The image codec: pixels of ``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy arrays.

One set of rules for every reader: the node (rclpy messages), bag reading (``rosbags``
messages) and the test cameras all call these functions with the message *fields*, so they work
on either kind of message and need no ROS. Encodings are matched without regard to case
(``8UC3`` and ``8uc3`` alike); 8UC3/8UC4 hold BGR(A) as OpenCV writes them; mono16 and 16UC1
keep their high byte (cv_bridge's 16 -> 8 bit rule), in the byte order ``is_bigendian`` names;
yuv422/uyvy is UYVY and yuv422_yuy2/yuyv is YUYV, as in ``sensor_msgs/image_encodings.hpp``.

libpng and libjpeg report problems of a file by writing to the process's stderr themselves, past
any logging. :func:`compressed_to_rgb` can collect those lines instead (``notes``), so the node
puts them through its own throttled warning; a line another thread wrote meanwhile goes back to
stderr unchanged.

Reading never copies when it does not have to (rgb8 without row padding comes back as a
read-only view of the message buffer). Every malformed message raises :class:`ImageRejected`,
a ``ValueError`` whose text says what is wrong and what is allowed, and whose ``kind`` names
the problem for the node's counters.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
import threading
from typing import Any, Iterator

import cv2
import numpy as np

__all__ = [
    "ImageRejected", "RAW_ENCODINGS", "REJECTION_KINDS", "compressed_to_labels",
    "compressed_to_rgb", "encode_compressed", "encode_rgb", "image_to_labels", "image_to_rgb",
    "layout", "peek_compressed_size",
]

# encoding -> (channels, bytes per channel); YUV 4:2:2 packs two pixels into four bytes.
_LAYOUTS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1),
    "8UC1": (1, 1), "8UC3": (3, 1), "8UC4": (4, 1), "mono16": (1, 2), "16UC1": (1, 2),
    "yuv422": (2, 1), "uyvy": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1),
}
_CANONICAL = {name.lower(): name for name in _LAYOUTS}
RAW_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
"""Raw encodings read (any case)."""
REJECTION_KINDS: tuple[str, ...] = ("encoding", "empty", "size", "too_large", "decode")
"""What :attr:`ImageRejected.kind` can be."""

_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB, "8UC4": cv2.COLOR_BGRA2RGB, "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
_YUV = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
_CODECS = {"jpeg": ".jpg", "png": ".png"}


class ImageRejected(ValueError):
    """A message that cannot be turned into an image; ``kind`` is one of
    :data:`REJECTION_KINDS` (``size`` covers data/step/shape mismatches)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def layout(encoding: str) -> tuple[str, int, int]:
    """(canonical name, channels, bytes per channel) of a raw encoding, any case.

    Raises:
        ImageRejected: ``encoding`` is not one of :data:`RAW_ENCODINGS`.
    """
    name = _CANONICAL.get(str(encoding).lower())
    if name is None:
        raise ImageRejected(
            "encoding",
            f"unsupported encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)}")
    return (name, *_LAYOUTS[name])


def _check_pixels(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageRejected(
            "empty", f"empty image ({width}x{height}): width and height must be > 0")
    if max_pixels > 0 and height * width > max_pixels:
        raise ImageRejected(
            "too_large", f"image {width}x{height} has {height * width} pixels, more than "
            f"max_image_pixels = {max_pixels}")


def _rows(encoding: str, height: int, width: int, step: int, data: Any, max_pixels: int
          ) -> tuple[str, int, int, np.ndarray]:
    """(canonical encoding, channels, depth, H x row-bytes view without the row padding)."""
    name, channels, depth = layout(encoding)
    height, width, step = int(height), int(width), int(step)
    _check_pixels(height, width, max_pixels)
    row = width * channels * depth
    if step < row:
        raise ImageRejected(
            "size", f"step {step} is shorter than a row of {width} {encoding} pixels "
            f"({row} bytes)")
    if name in _YUV and width % 2:
        raise ImageRejected("size", f"{encoding} needs an even width, got {width}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageRejected(
            "size", f"data has {buf.size} bytes, expected step * height = {step} * {height} = "
            f"{step * height}")
    return name, channels, depth, buf.reshape(height, step)[:, :row]


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: Any,
                 is_bigendian: bool = False, max_pixels: int = 0) -> np.ndarray:
    """The pixels of a raw ``sensor_msgs/Image`` as an HxWx3 uint8 RGB array.

    Args:
        encoding, height, width, step, data, is_bigendian: the message fields.
        max_pixels: reject images with more pixels than this (0 = no limit).

    Raises:
        ImageRejected: unknown encoding, empty or too large image, or ``data``/``step`` that do
            not match the size.
    """
    name, channels, depth, rows = _rows(encoding, height, width, step, data, max_pixels)
    height, width = rows.shape[0], int(width)
    if depth == 2:
        order = np.dtype(">u2" if is_bigendian else "<u2")
        # .view needs contiguous rows; a padded step gets one copy here.
        pixels16 = np.ascontiguousarray(rows).view(order).reshape(height, width)
        return cv2.cvtColor((pixels16 >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels)
    if name == "rgb8":
        return pixels
    # cv2 needs contiguous rows; only a padded step makes this copy.
    src = np.ascontiguousarray(pixels)
    if channels == 1:
        return cv2.cvtColor(src[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(src, _TO_RGB[name])


def image_to_labels(encoding: str, height: int, width: int, step: int, data: Any) -> np.ndarray:
    """A label image (mono8/8UC1: one class id per pixel) as an HxW uint8 array (a view)."""
    name, channels, depth = layout(encoding)
    if channels != 1 or depth != 1:
        raise ImageRejected("encoding", f"label images must be mono8 (one class id per pixel), "
                            f"got {encoding!r}")
    _, _, _, rows = _rows(encoding, height, width, step, data, 0)
    return rows


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


def _compressed_bytes(fmt: str, data: Any) -> np.ndarray:
    if "compresseddepth" in str(fmt).lower().replace(" ", ""):
        raise ImageRejected(
            "encoding", f"compressed format {fmt!r} is a depth image; the node segments colour "
            f"or grey images (jpeg, png)")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageRejected("empty", "empty compressed image (no data)")
    return buf


def _imdecode(fmt: str, buf: np.ndarray, flags: int) -> np.ndarray:
    try:
        image = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # OpenCV raises for some corrupt headers instead of returning None
        raise ImageRejected("decode", f"cannot decode compressed image ({fmt or 'no format'}): "
                            f"{str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageRejected(
            "decode", f"cannot decode compressed image ({fmt or 'no format'}, {buf.size} bytes); "
            f"expected JPEG or PNG data")
    return image


_CAPTURE_LOCK = threading.Lock()
_capture_file: Any = None
# rcutils' console lines ("[WARN] [1700000000.1] [node]: ...") belong to whoever wrote them.
_LOG_LINE = re.compile(r"^\[(DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\] ")


@contextlib.contextmanager
def _native_stderr(notes: list[str] | None) -> Iterator[None]:
    """Collect what native code writes to file descriptor 2 meanwhile into ``notes`` (one item
    per line); ROS log lines of other threads are written back to stderr. No-op for None."""
    global _capture_file
    if notes is None:
        yield
        return
    with _CAPTURE_LOCK:
        if _capture_file is None:
            _capture_file = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the process
        fd = _capture_file.fileno()
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(fd, 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            size = os.lseek(fd, 0, os.SEEK_END)
            text = os.pread(fd, size, 0).decode(errors="replace") if size else ""
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            for line in text.splitlines():  # here: the decoder may be raising
                if _LOG_LINE.match(line):
                    os.write(2, (line + "\n").encode())
                elif line.strip():
                    notes.append(line.strip())


def compressed_to_rgb(fmt: str, data: Any, max_pixels: int = 0,
                      notes: list[str] | None = None) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) to HxWx3 uint8 RGB.

    Args:
        notes: collect the decoder libraries' own messages here (``libpng warning: ...``)
            instead of letting them reach stderr.

    Raises:
        ImageRejected: empty data, a depth image (``compressedDepth``), a size over
            ``max_pixels``, or bytes OpenCV cannot decode.
    """
    buf = _compressed_bytes(fmt, data)
    size = peek_compressed_size(buf.data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels)
    with _native_stderr(notes):
        bgr = _imdecode(fmt, buf, cv2.IMREAD_COLOR)
    _check_pixels(bgr.shape[0], bgr.shape[1], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_to_labels(fmt: str, data: Any) -> np.ndarray:
    """A lossless single-channel ``CompressedImage`` (PNG) as HxW uint8 class ids."""
    labels = _imdecode(fmt, _compressed_bytes(fmt, data), cv2.IMREAD_UNCHANGED)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ImageRejected("encoding", f"compressed labels must decode to one 8-bit channel "
                            f"(format {fmt!r})")
    return labels


# -- writing -------------------------------------------------------------------------------------

def encode_rgb(rgb: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """(data, step) of an HxWx3 uint8 RGB image written in ``encoding`` (a test camera's
    output; :func:`image_to_rgb` reads every one of them back).

    rgb8, bgr8, rgba8, bgra8, mono8 and mono16 (little endian, ``grey * 257``) are exact; the
    YUV encodings use BT.601 limited range with chroma averaged over each pixel pair.
    """
    name, channels, depth = layout(encoding)
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if name == "rgb8":
        out = rgb
    elif name in ("bgr8", "8UC3"):
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif name == "rgba8":
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif name in ("bgra8", "8UC4"):
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif name in ("mono8", "8UC1"):
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif depth == 2:
        out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype("<u2") * 257
    else:
        out = _yuv422(rgb, uyvy=name in ("yuv422", "uyvy"))
    return np.ascontiguousarray(out).tobytes(), w * channels * depth


def _yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w % 2:
        raise ValueError(f"YUV 4:2:2 needs an even width, got {w}")
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    y = 16 + luma * 219 / 255
    u = (128 + 0.564 * (b - luma) * 224 / 255).reshape(h, w // 2, 2).mean(axis=2)
    v = (128 + 0.713 * (r - luma) * 224 / 255).reshape(h, w // 2, 2).mean(axis=2)
    order = (u, y[:, 0::2], v, y[:, 1::2]) if uyvy else (y[:, 0::2], u, y[:, 1::2], v)
    packed = np.stack(order, axis=-1)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8)


def encode_compressed(rgb: np.ndarray, codec: str, jpeg_quality: int = 95) -> bytes:
    """``rgb`` as JPEG or PNG bytes (what ``image_transport``'s compressed plugin sends)."""
    if codec not in _CODECS:
        raise ValueError(f"unknown image codec {codec!r}; valid: {', '.join(_CODECS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else []
    ok, buf = cv2.imencode(_CODECS[codec], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {codec}")
    return buf.tobytes()
