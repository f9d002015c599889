"""The image codec (``data/pixels.py``): what the node and bag reading see in every message.

No ROS needed: the codec takes message fields, and these tests give it fields.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from slimseg_ros.data.pixels import (
    RAW_ENCODINGS, REJECTION_KINDS, ImageRejected, compressed_to_labels, compressed_to_rgb,
    encode_compressed, encode_rgb, image_to_labels, image_to_rgb, layout, peek_compressed_size)


def _rgb(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _decode(rgb: np.ndarray, encoding: str, max_pixels: int = 0) -> np.ndarray:
    data, step = encode_rgb(rgb, encoding)
    return image_to_rgb(encoding, rgb.shape[0], rgb.shape[1], step, data, False, max_pixels)


def _padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row bytes with ``pad`` bytes of padding after every row, and the step."""
    flat = rows.reshape(rows.shape[0], -1)
    out = np.zeros((flat.shape[0], flat.shape[1] + pad), np.uint8)
    out[:, : flat.shape[1]] = flat
    return out.tobytes(), out.shape[1]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "8UC4"])
def test_colour_encodings_give_the_same_rgb(encoding: str) -> None:
    rgb = _rgb()
    out = _decode(rgb, encoding)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_encodings_match_in_any_case() -> None:
    rgb = _rgb()
    data, step = encode_rgb(rgb, "bgr8")
    for name in ("8UC3", "8uc3", "BGR8"):
        np.testing.assert_array_equal(image_to_rgb(name, 6, 8, step, data), rgb)
    assert layout("16uc1") == ("16UC1", 1, 2) and layout("RGB8") == ("rgb8", 3, 1)
    assert set(RAW_ENCODINGS) >= {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422"}


def test_rgb8_without_padding_is_read_without_a_copy() -> None:
    data, step = encode_rgb(_rgb(), "rgb8")
    out = image_to_rgb("rgb8", 6, 8, step, data)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16", "16UC1"])
def test_grey_encodings_give_grey_rgb(encoding: str) -> None:
    rgb = _rgb()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = _decode(rgb, encoding)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_sixteen_bits_keep_the_high_byte_in_the_named_byte_order(encoding: str) -> None:
    values = np.array([[0x1234, 0xFF00], [0x0100, 0x00FF]], dtype=np.uint16)
    high = [[0x12, 0xFF], [0x01, 0x00]]
    big = image_to_rgb(encoding, 2, 2, 4, values.astype(">u2").tobytes(), is_bigendian=True)
    little = image_to_rgb(encoding, 2, 2, 4, values.astype("<u2").tobytes(), is_bigendian=False)
    np.testing.assert_array_equal(big[..., 0], high)
    np.testing.assert_array_equal(little, big)
    data, step = _padded(values.astype("<u2").view(np.uint8).reshape(2, 4), 2)  # padded rows
    np.testing.assert_array_equal(image_to_rgb(encoding, 2, 2, step, data), little)


@pytest.mark.parametrize("encoding, alias", [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_byte_orders_and_their_aliases(encoding: str, alias: str) -> None:
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:2] = (200, 30, 60)
    rgb[2:] = (40, 90, 210)
    out = _decode(rgb, encoding)
    assert np.abs(out.astype(int) - rgb).max() <= 3
    data, step = encode_rgb(rgb, encoding)
    np.testing.assert_array_equal(image_to_rgb(alias, 4, 8, step, data), out)
    padded, padded_step = _padded(np.frombuffer(data, np.uint8).reshape(4, step), 4)
    np.testing.assert_array_equal(image_to_rgb(encoding, 4, 8, padded_step, padded), out)


def test_uyvy_grey_stays_grey() -> None:
    # U=128 Y=200 V=128 read as UYVY is light grey; read as YUYV it would be coloured.
    data = bytes([128, 200, 128, 200]) * 2
    out = image_to_rgb("yuv422", 1, 4, 8, data)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 1 and out.min() > 200


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "mono8", "8UC1"])
def test_padded_rows_are_read_correctly(encoding: str) -> None:
    rgb = _rgb(3, 5)
    data, step = encode_rgb(rgb, encoding)
    padded, padded_step = _padded(np.frombuffer(data, np.uint8).reshape(3, step), 7)
    np.testing.assert_array_equal(image_to_rgb(encoding, 3, 5, padded_step, padded),
                                  image_to_rgb(encoding, 3, 5, step, data))


@pytest.mark.parametrize("fields, kind, words", [
    (("rgb8", 4, 4, 12, bytes(47)), "size", "48"),          # short data
    (("rgb8", 4, 4, 12, bytes(60)), "size", "48"),          # too much data
    (("rgb8", 4, 4, 10, bytes(40)), "size", "step 10"),     # step shorter than a row
    (("bayer_rggb8", 4, 4, 4, bytes(16)), "encoding", "rgb8"),  # unknown: names supported
    (("rgb8", 0, 0, 0, b""), "empty", "0x0"),
    (("yuv422", 2, 3, 6, bytes(12)), "size", "even width"),
    (("uyvy", 2, 3, 6, bytes(12)), "size", "even width"),
])
def test_malformed_images_are_rejected_with_a_reason(fields, kind, words) -> None:
    with pytest.raises(ImageRejected) as err:
        image_to_rgb(*fields)
    assert err.value.kind == kind and kind in REJECTION_KINDS
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)


def test_too_many_pixels_are_rejected_before_reading() -> None:
    rgb = _rgb(10, 10)
    with pytest.raises(ImageRejected) as err:
        _decode(rgb, "rgb8", max_pixels=99)
    assert err.value.kind == "too_large" and "max_image_pixels = 99" in str(err.value)
    assert _decode(rgb, "rgb8", max_pixels=100).shape == (10, 10, 3)


def test_labels_are_one_class_id_per_pixel() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    data, step = _padded(labels, 3)
    for encoding in ("mono8", "8UC1"):
        np.testing.assert_array_equal(image_to_labels(encoding, 3, 4, step, data), labels)
    with pytest.raises(ImageRejected, match="mono8"):
        image_to_labels("rgb8", 1, 4, 12, bytes(12))
    png = encode_compressed(np.zeros((2, 2, 3), np.uint8), "png")
    with pytest.raises(ImageRejected, match="one 8-bit channel"):
        compressed_to_labels("png", png)
    ok, grey = cv2.imencode(".png", labels)
    np.testing.assert_array_equal(compressed_to_labels("png", grey.tobytes()), labels)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_to_rgb(fmt: str) -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (220, 40, 40)
    rgb[:, 24:] = (30, 60, 200)
    data = encode_compressed(rgb, fmt)
    assert peek_compressed_size(data) == (32, 48)
    out = compressed_to_rgb(fmt, data)
    tolerance = 0 if fmt == "png" else 40
    assert out.shape == rgb.shape
    assert np.abs(out[4:-4, 4:20].astype(int) - rgb[4:-4, 4:20]).max() <= tolerance


def test_compressed_size_limit_is_checked_from_the_header() -> None:
    data = encode_compressed(_rgb(20, 30), "png")
    with pytest.raises(ImageRejected) as err:
        compressed_to_rgb("png", data, max_pixels=599)
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


def test_writing_checks_what_it_is_given() -> None:
    with pytest.raises(ImageRejected, match="unsupported encoding"):
        encode_rgb(_rgb(), "bayer_rggb8")
    with pytest.raises(ValueError, match="even width"):
        encode_rgb(_rgb(2, 3), "yuv422")
    with pytest.raises(ValueError, match="unknown image codec"):
        encode_compressed(_rgb(), "gif")


def test_decoder_messages_are_collected_instead_of_written_to_stderr(capfd) -> None:
    """libpng writes its complaints to the process's stderr itself; with ``notes`` they are
    returned to the caller (the node logs them throttled) and stderr stays clean."""
    png = bytearray(encode_compressed(np.full((32, 32, 3), 90, np.uint8), "png"))
    png[len(png) // 2] ^= 0xFF  # a bad IDAT checksum
    notes: list[str] = []
    with pytest.raises(ImageRejected) as rejected:
        compressed_to_rgb("png", bytes(png), notes=notes)
    assert rejected.value.kind == "decode"
    assert notes and notes[0].startswith("libpng error")
    assert "libpng" not in capfd.readouterr().err
    # a good image leaves nothing, and without notes the libraries speak as before
    notes.clear()
    compressed_to_rgb("png", encode_compressed(np.zeros((8, 8, 3), np.uint8), "png"),
                      notes=notes)
    assert notes == []
    with pytest.raises(ImageRejected):
        compressed_to_rgb("png", bytes(png))
    assert "libpng" in capfd.readouterr().err
