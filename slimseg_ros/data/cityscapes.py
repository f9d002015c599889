"""Cityscapes fine annotations: ``leftImg8bit/{split}/{city}/`` + ``gtFine/{split}/{city}/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import load_class_spec
from slimseg_ros.data.io import list_images, read_label, read_rgb
from slimseg_ros.data.pairing import pair_by_stem, require_dir

CITYSCAPES_SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


class CityscapesDataset(SegmentationDataset):
    """Cityscapes with labelIds mapped to the 19 train ids (everything else -> 255).

    The mapping is one 256-entry lookup table applied to the whole label map. Samples are
    sorted by ``<city>_<sequence>_<frame>``.

    Args:
        root: Directory holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``train``, ``val`` or ``test``.
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
    """

    def __init__(self, root: str | Path, split: str, transform: Transform | None = None) -> None:
        if split not in CITYSCAPES_SPLITS:
            raise ValueError(
                f"unknown Cityscapes split {split!r}; valid: {', '.join(CITYSCAPES_SPLITS)}"
            )
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.class_spec = load_class_spec("cityscapes")
        self._lut = self.class_spec.label_lut()
        image_root = require_dir(self.root / "leftImg8bit" / split, f"Cityscapes {split} images")
        label_root = require_dir(self.root / "gtFine" / split, f"Cityscapes {split} labels")
        images = [p for city in sorted(image_root.iterdir()) if city.is_dir()
                  for p in list_images(city, IMAGE_SUFFIX)]
        if not images:
            raise ValueError(
                f"Cityscapes {split} split is empty: no {{city}}/*{IMAGE_SUFFIX} in {image_root}"
            )
        labels = [p for city in sorted(label_root.iterdir()) if city.is_dir()
                  for p in list_images(city, LABEL_SUFFIX)]
        self.samples = pair_by_stem(images, labels, IMAGE_SUFFIX, LABEL_SUFFIX, label_root)

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        """Return ``<city>_<sequence>_<frame>`` of sample ``index``."""
        return self.samples[self._check_index(index)][0].name[: -len(IMAGE_SUFFIX)]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(HxWx3 uint8 RGB, HxW uint8 train ids)`` of sample ``index``."""
        image_path, label_path = self.samples[self._check_index(index)]
        image = read_rgb(image_path)
        raw = read_label(label_path)
        if raw.ndim != 2 or raw.shape != image.shape[:2]:
            raise ValueError(
                f"Cityscapes label {label_path} has shape {raw.shape}; expected "
                f"{image.shape[:2]} single-channel labelIds"
            )
        return image, self._lut[raw]
