"""The simulated cameras: uint8 RGB in and out, deterministic, and each shifts the way it says."""

from __future__ import annotations

import numpy as np
import pytest

from slimseg_ros.data.camera_shifts import CAMERA_SHIFTS, shift_a, shift_b, shift_c


def _rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(CAMERA_SHIFTS))
def test_shape_and_dtype_are_kept(name: str) -> None:
    camera = CAMERA_SHIFTS[name]
    for shape in ((48, 64, 3), (7, 3), (2, 5, 9, 3)):
        rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        out = camera(rgb, 0)
        assert out.shape == rgb.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", sorted(CAMERA_SHIFTS))
def test_the_input_is_left_alone(name: str) -> None:
    rgb = _rgb()
    copy = rgb.copy()
    CAMERA_SHIFTS[name](rgb, 3)
    assert np.array_equal(rgb, copy)


def test_camera_a_is_deterministic_and_camera_b_follows_its_seed() -> None:
    rgb = _rgb()
    assert np.array_equal(shift_a(rgb), shift_a(rgb, seed=5))  # no noise: the seed is unused
    assert np.array_equal(shift_b(rgb, 3), shift_b(rgb, 3))
    assert not np.array_equal(shift_b(rgb, 3), shift_b(rgb, 4))  # a fresh noise draw


def test_camera_a_is_darker_and_bluer() -> None:
    grey = np.full((16, 16, 3), 128, np.uint8)
    out = shift_a(grey).astype(int)
    assert (out < 128).all()  # gamma 1.8 darkens the mid-tones
    r, g, b = out[..., 0].mean(), out[..., 1].mean(), out[..., 2].mean()
    assert r < g < b  # gains 0.75 / 0.85 / 1.1: a blue cast
    assert (shift_a(np.zeros((4, 4, 3), np.uint8)) == 0).all()  # black stays black
    white = shift_a(np.full((4, 4, 3), 255, np.uint8))
    assert (white[..., 2] == 255).all()  # the blue gain above 1 clips


def test_camera_b_lifts_the_blacks_and_warms() -> None:
    black = shift_b(np.zeros((64, 64, 3), np.uint8), 0).astype(float)
    assert black.mean() > 25  # black at 15%: shadows lifted
    grey = shift_b(np.full((64, 64, 3), 128, np.uint8), 0).astype(float)
    r, g, b = grey[..., 0].mean(), grey[..., 1].mean(), grey[..., 2].mean()
    assert r > g > b  # gains 1.12 / 1.0 / 0.8: a warm cast
    assert g > 140  # gamma 0.75 and the lift brighten the mid-tones
    assert grey[..., 1].std() > 1.0  # sensor noise


def test_camera_c_over_exposes_and_smears_along_rows() -> None:
    grey = shift_c(np.full((8, 100, 3), 100, np.uint8)).astype(int)
    assert (grey == 140).all()  # gain 1.4; a flat frame has nothing to blur
    assert (shift_c(np.full((4, 50, 3), 200, np.uint8)) == 255).all()  # highlights clip
    edge = np.zeros((6, 300, 3), np.uint8)  # the blur spans 6 pixels
    edge[:, 150:] = 150
    out = shift_c(edge).astype(int)
    ramp = out[0, :, 0]
    assert ramp[0] == 0 and ramp[-1] == 210  # far from the edge: black, and 150 * 1.4
    assert 0 < ramp[148] < ramp[151] < 210 and (np.diff(ramp) >= 0).all()  # a smooth ramp
    assert (out == out[:1]).all()  # rows are blurred, not columns
    assert np.array_equal(shift_c(edge), shift_c(edge, seed=9))  # deterministic


def test_the_registry_names_every_camera() -> None:
    assert CAMERA_SHIFTS == {"a": shift_a, "b": shift_b, "c": shift_c}
