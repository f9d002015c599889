"""Image message <-> numpy conversions of the node (no DDS needed)."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from sensor_msgs.msg import Image  # noqa: E402

from slimseg_ros.ros.conversions import (  # noqa: E402
    ImageRejected, blend, compressed_to_rgb, fill_image, image_to_rgb, palette_lut,
    peek_compressed_size)
from slimseg_ros.ros.harness import make_compressed, make_header, make_image  # noqa: E402


def _rgb(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _decode(msg: Image, max_pixels: int = 0) -> np.ndarray:
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        bool(msg.is_bigendian), max_pixels)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_the_same_rgb(encoding: str) -> None:
    rgb = _rgb()
    out = _decode(make_image(rgb, encoding, make_header(1)))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_rgb8_without_padding_is_read_without_a_copy() -> None:
    msg = make_image(_rgb(), "rgb8", make_header(1))
    out = _decode(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding", ["mono8", "mono16"])
def test_grey_encodings_give_grey_rgb(encoding: str) -> None:
    rgb = _rgb()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = _decode(make_image(rgb, encoding, make_header(1)))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_mono16_big_endian_is_read_as_big_endian() -> None:
    values = np.array([[0x1234, 0xFF00], [0x0100, 0x00FF]], dtype=">u2")
    out = image_to_rgb("mono16", 2, 2, 4, values.tobytes(), is_bigendian=True)
    np.testing.assert_array_equal(out[..., 0], [[0x12, 0xFF], [0x01, 0x00]])


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_byte_orders(encoding: str) -> None:
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:2] = (200, 30, 60)
    rgb[2:] = (40, 90, 210)
    out = _decode(make_image(rgb, encoding, make_header(1)))
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_uyvy_grey_stays_grey() -> None:
    # U=128 Y=200 V=128 read as UYVY is light grey; read as YUYV it would be coloured.
    data = bytes([128, 200, 128, 200]) * 2
    out = image_to_rgb("yuv422", 1, 4, 8, data)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 1 and out.min() > 200


def test_padded_rows_are_read_correctly() -> None:
    rgb = _rgb(3, 5)
    step = 5 * 3 + 7
    rows = np.zeros((3, step), np.uint8)
    rows[:, :15] = rgb.reshape(3, 15)
    out = image_to_rgb("rgb8", 3, 5, step, rows.tobytes())
    np.testing.assert_array_equal(out, rgb)
    bgr_rows = rows.copy()
    bgr_rows[:, :15] = rgb[..., ::-1].reshape(3, 15)
    np.testing.assert_array_equal(image_to_rgb("bgr8", 3, 5, step, bgr_rows.tobytes()), rgb)


@pytest.mark.parametrize("fields, kind, words", [
    (("rgb8", 4, 4, 12, bytes(47)), "size", "48"),          # short data
    (("rgb8", 4, 4, 12, bytes(60)), "size", "48"),          # too much data
    (("rgb8", 4, 4, 10, bytes(40)), "size", "step 10"),     # step shorter than a row
    (("bayer_rggb8", 4, 4, 4, bytes(16)), "encoding", "rgb8"),  # unknown: names supported
    (("rgb8", 0, 0, 0, b""), "empty", "0x0"),
    (("yuv422", 2, 3, 6, bytes(12)), "size", "even width"),
])
def test_malformed_images_are_rejected_with_a_reason(fields, kind, words) -> None:
    with pytest.raises(ImageRejected) as err:
        image_to_rgb(*fields)
    assert err.value.kind == kind
    assert words in str(err.value)


def test_too_many_pixels_are_rejected_before_reading() -> None:
    msg = make_image(_rgb(10, 10), "rgb8", make_header(1))
    with pytest.raises(ImageRejected) as err:
        _decode(msg, max_pixels=99)
    assert err.value.kind == "too_large" and "max_image_pixels = 99" in str(err.value)
    assert _decode(msg, max_pixels=100).shape == (10, 10, 3)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_to_rgb(fmt: str) -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (220, 40, 40)
    rgb[:, 24:] = (30, 60, 200)
    msg = make_compressed(rgb, fmt, make_header(1))
    assert peek_compressed_size(bytes(msg.data)) == (32, 48)
    out = compressed_to_rgb(msg.format, msg.data)
    tolerance = 0 if fmt == "png" else 40
    assert out.shape == rgb.shape
    assert np.abs(out[4:-4, 4:20].astype(int) - rgb[4:-4, 4:20]).max() <= tolerance


def test_compressed_size_limit_is_checked_from_the_header() -> None:
    msg = make_compressed(_rgb(20, 30), "png", make_header(1))
    with pytest.raises(ImageRejected) as err:
        compressed_to_rgb("png", msg.data, max_pixels=599)
    assert err.value.kind == "too_large"


def test_png_header_size_is_peeked_without_decoding() -> None:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 70000, 9)
    assert peek_compressed_size(header + bytes(16)) == (9, 70000)
    with pytest.raises(ImageRejected) as err:
        compressed_to_rgb("png", header + bytes(16), max_pixels=500_000)
    assert err.value.kind == "too_large"


@pytest.mark.parametrize("fmt, data, kind", [
    ("jpeg", b"", "empty"),
    ("jpeg", b"\xff\xd8 this is not a jpeg at all", "decode"),
    ("png", bytes(range(200)), "decode"),
    ("16UC1; compressedDepth", b"\x00" * 20, "encoding"),
])
def test_undecodable_compressed_images_are_rejected(fmt: str, data: bytes, kind: str) -> None:
    with pytest.raises(ImageRejected) as err:
        compressed_to_rgb(fmt, data)
    assert err.value.kind == kind


def test_fill_image_writes_a_consistent_message() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = fill_image(Image(), labels, "mono8")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (3, 4, 4, "mono8")
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint8).reshape(3, 4), labels)
    colour = fill_image(Image(), np.zeros((2, 5, 3), np.uint8), "rgb8")
    assert colour.step == 15 and len(colour.data) == 30
    with pytest.raises(ValueError):
        fill_image(Image(), np.zeros((2, 2), np.float32), "mono8")


def test_palette_and_overlay() -> None:
    lut = palette_lut([(255, 0, 0), (0, 255, 0)])
    labels = np.array([[0, 1, 7]], np.uint8)
    np.testing.assert_array_equal(lut[labels], [[[255, 0, 0], [0, 255, 0], [0, 0, 0]]])
    rgb = np.full((1, 3, 3), 100, np.uint8)
    mixed = blend(rgb, lut[labels], 0.5)
    np.testing.assert_array_equal(mixed[0, 0], [178, 50, 50])
    np.testing.assert_array_equal(blend(rgb, lut[labels], 0.0), rgb)
