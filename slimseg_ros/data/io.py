"""Fast image and label-map reading with OpenCV (RGB order, labels read unchanged)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array.

    Raises:
        ValueError: The file is missing or cannot be decoded.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path} (missing or not a decodable image)")
    # cv2 decodes to BGR; the whole package works in RGB.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """Read a label map as stored (no colour conversion, no scaling).

    Returns:
        HxW uint8 for single-channel files; HxWx3 uint8 RGB for colour-coded masks.

    Raises:
        ValueError: Missing, undecodable, or not 8-bit.
    """
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"cannot read label map {path} (missing or not a decodable image)")
    if label.dtype != np.uint8:
        raise ValueError(f"label map {path} has dtype {label.dtype}; expected 8-bit values")
    if label.ndim == 3:
        if label.shape[2] == 4:
            label = label[:, :, :3]
        if label.shape[2] == 1:
            return label[:, :, 0]
        return cv2.cvtColor(label, cv2.COLOR_BGR2RGB)
    return label


def list_images(directory: Path, suffix: str = "") -> list[Path]:
    """Return the image files in ``directory`` whose name ends with ``suffix``, sorted by name."""
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and p.name.endswith(suffix)
    )
