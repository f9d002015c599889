"""rclpy image messages from numpy arrays (labels, colour, overlay, test frames), no cv_bridge.

Reading pixels out of a message is :mod:`slimseg_ros.data.pixels` (one codec for the node and
bag reading). Writing fills ``data`` with ``bytes`` (``arr.tobytes()``), the form rclpy's
setter takes fastest by far; a memoryview is much slower there.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..data.pixels import encode_compressed, encode_rgb
from ..data.stamps import split_ns

__all__ = ["blend", "fill_image", "make_compressed", "make_header", "make_image", "palette_lut"]


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


def make_header(stamp_ns: int, frame_id: str = "camera") -> Header:
    """A header with the given stamp (nanoseconds) and frame id."""
    sec, nanosec = split_ns(stamp_ns)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def make_image(rgb: np.ndarray, encoding: str, header: Header) -> Image:
    """An ``Image`` holding ``rgb`` (HxWx3 uint8) written in ``encoding`` (a camera's frame;
    see :func:`~slimseg_ros.data.pixels.encode_rgb` for the encodings)."""
    data, step = encode_rgb(rgb, encoding)
    return Image(header=header, height=int(rgb.shape[0]), width=int(rgb.shape[1]),
                 encoding=encoding, is_bigendian=0, step=step, data=data)


def make_compressed(rgb: np.ndarray, fmt: str, header: Header) -> CompressedImage:
    """A ``CompressedImage`` of ``rgb`` as ``jpeg`` or ``png``."""
    return CompressedImage(header=header, format=fmt, data=encode_compressed(rgb, fmt))


def palette_lut(palette: Any) -> np.ndarray:
    """A (256, 3) uint8 table: class i -> palette[i], every other label -> black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    lut[: len(colours)] = colours
    return lut


def blend(rgb: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * rgb + alpha * color`` as uint8 (the overlay image)."""
    return cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, color, alpha, 0.0)
