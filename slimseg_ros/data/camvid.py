"""CamVid in the SegNet layout: ``{split}/`` images and ``{split}annot/`` label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import load_class_spec
from slimseg_ros.data.io import list_images, read_label, read_rgb
from slimseg_ros.data.pairing import pair_by_stem, require_dir

CAMVID_SPLITS = ("train", "val", "test")


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes, SegNet layout (``train/``, ``trainannot/``, ``val/``, ...).

    Samples are sorted by file name (``<sequence>_<frame>.png``), so a split replayed in order
    looks like a camera stream. Label 11 (void) becomes ``ignore_index`` (255).

    Args:
        root: Directory holding ``{split}/`` and ``{split}annot/``.
        split: ``train``, ``val`` or ``test``.
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
    """

    def __init__(self, root: str | Path, split: str, transform: Transform | None = None) -> None:
        if split not in CAMVID_SPLITS:
            raise ValueError(f"unknown CamVid split {split!r}; valid: {', '.join(CAMVID_SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.class_spec = load_class_spec("camvid")
        self._lut = self.class_spec.label_lut()
        image_dir = require_dir(self.root / split, f"CamVid {split} images")
        label_dir = require_dir(self.root / f"{split}annot", f"CamVid {split} labels")
        images = list_images(image_dir)
        if not images:
            raise ValueError(f"CamVid {split} split is empty: no images in {image_dir}")
        self.samples = pair_by_stem(images, list_images(label_dir), labels_dir=label_dir)

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        """Return the file stem of sample ``index`` (``0016E5_07959``)."""
        return self.samples[self._check_index(index)][0].stem

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(HxWx3 uint8 RGB, HxW uint8 train ids)`` of sample ``index``."""
        image_path, label_path = self.samples[self._check_index(index)]
        image = read_rgb(image_path)
        raw = read_label(label_path)
        if raw.ndim != 2:
            raise ValueError(f"CamVid label {label_path} has shape {raw.shape}; expected HxW")
        if raw.shape != image.shape[:2]:
            raise ValueError(
                f"CamVid label {label_path} is {raw.shape[1]}x{raw.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image, self._lut[raw]
