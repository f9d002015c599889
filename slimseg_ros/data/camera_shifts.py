"""Simulated cameras: CamVid frames as another camera would have taken them.

The studies score models and test ``slimseg recalibrate`` / ``slimseg adapt`` on CamVid seen
through these (docs/log/adapt.md, docs/log/training.md):

- :func:`shift_a`, camera A: darker (gamma 1.8), a blue cast (channel gains 0.75 / 0.85 / 1.1),
  highlights clipped; no noise.
- :func:`shift_b`, camera B: lifted shadows (black at 15%), brighter mid-tones (gamma 0.75), a
  warm cast (gains 1.12 / 1.0 / 0.8) and Gaussian sensor noise drawn from ``seed``.
- :func:`shift_c`, camera C: over-exposed (gain 1.4, highlights clipped) and smeared by
  horizontal motion blur over 2% of the frame's width (a long exposure while the robot turns):
  a shift of sharpness as well as of colour, which BN statistics alone cannot undo.

Both take and return uint8 RGB of any shape ``(..., 3)``, and share one signature
``(rgb, seed)`` so that callers can hold either in :data:`CAMERA_SHIFTS` (a bag writer passes
the frame index as the seed: a fresh noise draw per frame for camera B).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CAMERA_SHIFTS", "CameraShift", "SHIFT_A_GAINS", "SHIFT_A_GAMMA", "shift_a",
           "shift_b", "shift_c"]

CameraShift = Callable[[np.ndarray, int], np.ndarray]
"""``camera(rgb, seed) -> rgb``: uint8 RGB in, uint8 RGB of the same shape out."""

SHIFT_A_GAMMA = 1.8
SHIFT_A_GAINS = (0.75, 0.85, 1.1)
_B_BLACK, _B_SPAN = 0.15, 0.85  # black level and the range above it
_B_GAMMA = 0.75
_B_GAINS = (1.12, 1.0, 0.8)
_B_NOISE_STD = 5.0 / 255.0
_C_GAIN = 1.4
_C_BLUR_FRACTION = 0.02  # motion blur length as a fraction of the width


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def shift_a(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Camera A: darker (gamma 1.8), a blue cast, clipped. Deterministic: ``seed`` is unused
    (accepted so that both cameras have one signature)."""
    x = (rgb.astype(np.float32) / 255.0) ** SHIFT_A_GAMMA * np.array(SHIFT_A_GAINS, np.float32)
    return _to_uint8(x)


def shift_b(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Camera B: lifted shadows, brighter mid-tones, a warm cast and sensor noise from ``seed``
    (the same seed gives the same frame)."""
    x = _B_BLACK + _B_SPAN * (rgb.astype(np.float32) / 255.0) ** _B_GAMMA
    x = x * np.array(_B_GAINS, np.float32)
    noise = np.random.default_rng(seed).normal(0.0, _B_NOISE_STD, x.shape).astype(np.float32)
    return _to_uint8(x + noise)


def _motion_blur(x: np.ndarray, length: int) -> np.ndarray:
    """Each pixel the mean of ``length`` pixels along its row (edges padded by repetition)."""
    if length < 2 or x.ndim < 3:
        return x
    before = (length - 1) // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(before, length - 1 - before), (0, 0)],
                    mode="edge")
    sums = np.cumsum(padded, axis=-2, dtype=np.float64)
    sums = np.concatenate([np.zeros_like(sums[..., :1, :]), sums], axis=-2)
    return ((sums[..., length:, :] - sums[..., :-length, :]) / length).astype(np.float32)


def shift_c(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Camera C: over-exposed (gain 1.4, clipped) and motion-blurred along each row.
    Deterministic: ``seed`` is unused."""
    x = np.clip(rgb.astype(np.float32) / 255.0 * _C_GAIN, 0.0, 1.0)  # the sensor clips first
    width = rgb.shape[-2] if rgb.ndim >= 3 else 1
    return _to_uint8(_motion_blur(x, round(_C_BLUR_FRACTION * width)))


CAMERA_SHIFTS: dict[str, CameraShift] = {"a": shift_a, "b": shift_b, "c": shift_c}
"""The simulated cameras by name (``shifted_bags.py --camera a|b|c``)."""
