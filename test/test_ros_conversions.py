"""rclpy image messages built from arrays: labels out of the node, test camera frames in.

The pixel rules themselves are tested without ROS in ``test_data_pixels.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from sensor_msgs.msg import Image  # noqa: E402

from slimseg_ros.data.pixels import compressed_to_rgb, image_to_rgb  # noqa: E402
from slimseg_ros.data.stamps import stamp_ns  # noqa: E402
from slimseg_ros.ros.conversions import (  # noqa: E402
    blend, fill_image, make_compressed, make_header, make_image, palette_lut)


def _rgb(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_camera_frames_carry_their_header_and_read_back(encoding: str) -> None:
    rgb = _rgb()
    msg = make_image(rgb, encoding, make_header(1_500_000_007, "cam"))
    assert stamp_ns(msg.header) == 1_500_000_007 and msg.header.frame_id == "cam"
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (6, 8, encoding, 0)
    out = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                       bool(msg.is_bigendian))
    np.testing.assert_array_equal(out, rgb)
    png = make_compressed(rgb, "png", msg.header)
    assert png.header == msg.header and png.format == "png"
    np.testing.assert_array_equal(compressed_to_rgb(png.format, png.data), rgb)


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
