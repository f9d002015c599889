"""Frames without labels as a first-class input: image folders, rosbags, a partition's remainder.

A robot records far more frames than anyone labels. Every source here is a
:class:`~slimseg_ros.data.base.SegmentationDataset` whose labels are all ``ignore_index``, so the
same transforms and loaders serve labelled and unlabelled data; semi-supervised training (MGD)
and ``slimseg adapt`` read only the images.

A *partition* splits a labelled dataset into a labelled fraction and an unlabelled rest, chosen
at random from a seed and written to a JSON file, so runs that should be compared use exactly
the same frames (the semi-supervised protocol of MGD and CPS).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import ClassSpec, load_class_spec
from slimseg_ros.data.io import IMAGE_EXTENSIONS, read_rgb

__all__ = ["ImageFolderFrames", "SubsetFrames", "UnlabeledView", "open_unlabeled",
           "labeled_partition"]


def _blank(image: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    return image, np.full(image.shape[:2], ignore_index, dtype=np.uint8)


class ImageFolderFrames(SegmentationDataset):
    """Every image under ``root`` (recursively, sorted by path), with all-ignore labels.

    Raises ``ValueError`` when the folder holds no image, or its first image cannot be decoded
    (a folder of the wrong files fails at once, not an hour into training).
    """

    def __init__(self, root: str | Path, classes: str | Path | ClassSpec = "camvid",
                 transform: Transform | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: no such image folder")
        self.class_spec = classes if isinstance(classes, ClassSpec) else load_class_spec(classes)
        self.transform = transform
        self.paths = sorted(p for p in self.root.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.paths:
            raise ValueError(f"{self.root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        read_rgb(self.paths[0])  # one clear error now rather than in a DataLoader worker

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return str(self.paths[self._check_index(index)].relative_to(self.root))

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return _blank(read_rgb(self.paths[self._check_index(index)]), self.ignore_index)


class SubsetFrames(SegmentationDataset):
    """The samples ``indices`` of ``base``, labels kept or (``unlabeled=True``) replaced by ignore."""

    def __init__(self, base: SegmentationDataset, indices: Sequence[int], *,
                 unlabeled: bool = False, transform: Transform | None = None) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.unlabeled = unlabeled
        self.class_spec = base.class_spec
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, index: int) -> str:
        return self.base.name(self.indices[self._check_index(index)])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.base.load(self.indices[self._check_index(index)])
        return _blank(image, self.ignore_index) if self.unlabeled else (image, label)


class UnlabeledView(SubsetFrames):
    """All of ``base``'s frames with their labels dropped (a labelled bag used as unlabelled)."""

    def __init__(self, base: SegmentationDataset, transform: Transform | None = None) -> None:
        super().__init__(base, range(len(base)), unlabeled=True, transform=transform)


def _is_bag(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def open_unlabeled(source: str | Path, *, image_topic: str | None = None,
                   classes: str | Path | ClassSpec = "camvid",
                   transform: Transform | None = None) -> SegmentationDataset:
    """Unlabelled frames from a rosbag2 directory (images only, raw or compressed) or a folder.

    Raises ``ValueError`` in one line when nothing readable is there.
    """
    path = Path(source)
    if not path.exists():
        raise ValueError(f"{path}: no such bag or image folder")
    if _is_bag(path):
        from slimseg_ros.data.rosbag import RosbagFrames

        frames = RosbagFrames(path, "all", image_topic=image_topic, classes=classes,
                              require_labels=False)
        frames.load(0)  # decode one frame now: a bag of undecodable images fails here
        return UnlabeledView(frames, transform=transform)
    if image_topic:
        raise ValueError(f"{path} is an image folder; an image topic applies to bags only")
    return ImageFolderFrames(path, classes, transform)


def labeled_partition(dataset: SegmentationDataset, fraction: float, seed: int,
                      path: str | Path, describe: dict[str, Any] | None = None
                      ) -> tuple[list[int], list[int]]:
    """(labelled indices, unlabelled indices) of ``dataset``: a fixed random ``fraction``.

    The partition is read from ``path`` when it exists (and must name exactly this dataset's
    samples), else drawn from ``seed`` and written there, so every run of a comparison uses the
    same labelled frames.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"labeled_fraction must be in (0, 1), got {fraction:g}")
    path = Path(path)
    names = [dataset.name(i) for i in range(len(dataset))]
    if path.is_file():
        doc = json.loads(path.read_text())
        labeled, unlabeled = list(doc.get("labeled", [])), list(doc.get("unlabeled", []))
        if sorted(labeled + unlabeled) != sorted(names):
            raise ValueError(f"partition {path} lists other frames than the dataset's "
                             f"{len(names)}; delete it or point data.partition elsewhere")
        index = {n: i for i, n in enumerate(names)}
        return [index[n] for n in labeled], [index[n] for n in unlabeled]
    count = max(1, round(fraction * len(names)))
    order = np.random.default_rng(seed).permutation(len(names))
    labeled_idx = sorted(int(i) for i in order[:count])
    unlabeled_idx = sorted(int(i) for i in order[count:])
    if not unlabeled_idx:
        raise ValueError(f"a fraction of {fraction:g} of {len(names)} frames leaves none unlabelled")
    doc = {"fraction": fraction, "seed": seed, **(describe or {}),
           "labeled": [names[i] for i in labeled_idx],
           "unlabeled": [names[i] for i in unlabeled_idx]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)
    return labeled_idx, unlabeled_idx
