"""Synthetic scenes for tests and smoke runs: coloured shapes whose class is their colour."""

from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import ClassSpec


def synthetic_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Well separated RGB colours: evenly spaced hues, alternating brightness."""
    colors = []
    for c in range(num_classes):
        r, g, b = colorsys.hsv_to_rgb(c / num_classes, 0.85, 0.95 if c % 2 == 0 else 0.6)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colors)


class SyntheticScenes(SegmentationDataset):
    """Small deterministic scenes: a background plus a few rectangles and discs.

    Every region is painted in its class colour plus per-pixel noise, so the label is a
    learnable function of colour (a few training steps lower the loss). Sample ``i`` depends
    only on ``(seed, i)``, not on access order.

    Args:
        n: Number of samples.
        size: Image size, int or (height, width).
        num_classes: Classes (>= 2); class 0 is the background.
        seed: Seed of the whole set.
        shapes: Inclusive range of shapes per scene.
        noise: Amplitude of the uniform per-pixel colour noise (0..255).
        ignore_border: Width of a frame of ignore pixels around each label map (0: none).
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
    """

    def __init__(
        self,
        n: int = 32,
        size: int | Sequence[int] = 64,
        num_classes: int = 4,
        seed: int = 0,
        shapes: tuple[int, int] = (2, 5),
        noise: int = 20,
        ignore_border: int = 0,
        transform: Transform | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if h < 8 or w < 8:
            raise ValueError(f"size must be at least 8x8, got {size!r}")
        if not 2 <= num_classes <= 255:
            raise ValueError(f"num_classes must be in 2..255, got {num_classes}")
        if not 1 <= shapes[0] <= shapes[1]:
            raise ValueError(f"shapes must be a range 1 <= low <= high, got {shapes!r}")
        if not 0 <= noise <= 255 or not 0 <= ignore_border < min(h, w) // 2:
            raise ValueError(f"noise must be in 0..255 and ignore_border below {min(h, w) // 2}")
        self.n, self.size, self.seed = int(n), (h, w), int(seed)
        self.shapes, self.noise, self.ignore_border = shapes, int(noise), int(ignore_border)
        palette = synthetic_palette(num_classes)
        self.class_spec = ClassSpec(
            names=tuple(f"class_{c}" for c in range(num_classes)), palette=palette,
            name="synthetic",
        )
        self._colors = np.asarray(palette, dtype=np.int16)
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate ``(HxWx3 uint8 RGB, HxW uint8 label)`` for sample ``index``."""
        index = self._check_index(index)
        rng = np.random.default_rng([self.seed, index])
        h, w = self.size
        label = np.zeros((h, w), dtype=np.uint8)
        for _ in range(int(rng.integers(self.shapes[0], self.shapes[1] + 1))):
            cls = int(rng.integers(1, self.num_classes))
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            ry = int(rng.integers(max(2, h // 10), max(3, h // 3)))
            rx = int(rng.integers(max(2, w // 10), max(3, w // 3)))
            if rng.random() < 0.5:
                cv2.rectangle(label, (cx - rx, cy - ry), (cx + rx, cy + ry), cls, thickness=-1)
            else:
                cv2.ellipse(label, (cx, cy), (rx, ry), 0, 0, 360, cls, thickness=-1)
        noise = rng.integers(-self.noise, self.noise + 1, size=(h, w, 3), dtype=np.int16)
        image = np.clip(self._colors[label] + noise, 0, 255).astype(np.uint8)
        if self.ignore_border:
            b = self.ignore_border
            label[:b], label[-b:], label[:, :b], label[:, -b:] = 255, 255, 255, 255
        return image, label
