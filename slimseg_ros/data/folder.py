"""Image/mask folders: a user's own data, paired by file stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import ClassSpec, load_class_spec
from slimseg_ros.data.io import list_images, read_label, read_rgb
from slimseg_ros.data.pairing import pair_by_stem, require_dir


def rgb_mask_to_ids(mask: np.ndarray, spec: ClassSpec) -> np.ndarray:
    """Map a colour-coded HxWx3 RGB mask to train ids through the palette (unknown -> ignore)."""
    palette = spec.palette_array().astype(np.int32)
    keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    if len(np.unique(keys)) != len(keys):
        raise ValueError(f"class spec {spec.name!r} has repeated palette colours; "
                         f"colour-coded masks need one colour per class")
    order = np.argsort(keys)
    sorted_keys = keys[order]
    m = mask.astype(np.int32)
    pixel_keys = (m[..., 0] << 16) | (m[..., 1] << 8) | m[..., 2]
    pos = np.clip(np.searchsorted(sorted_keys, pixel_keys), 0, len(keys) - 1)
    ids = order[pos].astype(np.uint8)
    ids[sorted_keys[pos] != pixel_keys] = spec.ignore_index
    return ids


class FolderDataset(SegmentationDataset):
    """Images in one directory, masks in another, paired by file stem (``a.jpg`` <-> ``a.png``).

    Single-channel masks hold class ids (or raw ids mapped by the spec's ``raw_label_map``);
    any value that is not a class maps to the ignore index. Colour (RGB) masks are mapped
    through the spec's palette, unknown colours to the ignore index.

    Args:
        images_dir: Directory of images.
        masks_dir: Directory of masks (lossless: PNG).
        classes_yaml: Class spec: built-in name, YAML path, or a :class:`ClassSpec`.
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
    """

    def __init__(
        self,
        images_dir: str | Path,
        masks_dir: str | Path,
        classes_yaml: str | Path | ClassSpec,
        transform: Transform | None = None,
    ) -> None:
        self.images_dir = require_dir(Path(images_dir), "image folder")
        self.masks_dir = require_dir(Path(masks_dir), "mask folder")
        self.class_spec = (classes_yaml if isinstance(classes_yaml, ClassSpec)
                           else load_class_spec(classes_yaml))
        self.transform = transform
        self._lut = self.class_spec.label_lut()
        images = list_images(self.images_dir)
        if not images:
            raise ValueError(f"no images in {self.images_dir}")
        self.samples = pair_by_stem(images, list_images(self.masks_dir),
                                    labels_dir=self.masks_dir)

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        """Return the file stem of sample ``index``."""
        return self.samples[self._check_index(index)][0].stem

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(HxWx3 uint8 RGB, HxW uint8 train ids)`` of sample ``index``."""
        image_path, mask_path = self.samples[self._check_index(index)]
        image = read_rgb(image_path)
        mask = read_label(mask_path)
        label = self._lut[mask] if mask.ndim == 2 else rgb_mask_to_ids(mask, self.class_spec)
        if label.shape != image.shape[:2]:
            raise ValueError(
                f"mask {mask_path} is {label.shape[1]}x{label.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image, label
