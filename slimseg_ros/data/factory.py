"""``build_dataset``: one entry point from a dataset name to a dataset object."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable

from slimseg_ros.data.base import SegmentationDataset, Transform
from slimseg_ros.data.class_spec import ClassSpec


def _camvid(root: Path, split: str, transform: Transform | None,
            sequences: list[str] | None = None, exclude_sequences: list[str] | None = None,
            **kw: Any) -> SegmentationDataset:
    from slimseg_ros.data.camvid import CamVidDataset

    _no_extra("camvid", kw)
    return CamVidDataset(root, split, transform=transform, sequences=sequences,
                         exclude_sequences=exclude_sequences)


def _cityscapes(
    root: Path, split: str, transform: Transform | None, **kw: Any
) -> SegmentationDataset:
    from slimseg_ros.data.cityscapes import CityscapesDataset

    _no_extra("cityscapes", kw)
    return CityscapesDataset(root, split, transform=transform)


def _folder(
    root: Path,
    split: str,
    transform: Transform | None,
    classes: str | Path | ClassSpec | None = None,
) -> SegmentationDataset:
    """Read ``{root}/images/{split}/`` and ``{root}/masks/{split}/`` (spec: ``classes``)."""
    from slimseg_ros.data.folder import FolderDataset

    if classes is None:
        classes = root / "classes.yaml"
        if not classes.is_file():
            raise ValueError(
                f"folder dataset needs a class spec: pass classes=NAME_OR_YAML or create {classes}"
            )
    return FolderDataset(root / "images" / split, root / "masks" / split, classes, transform)


def _rosbag(root: Path, split: str, transform: Transform | None, **kw: Any) -> SegmentationDataset:
    """The frames of the rosbag2 directory ``root`` (see :class:`RosbagFrames` for options)."""
    from slimseg_ros.data.rosbag import RosbagFrames

    return RosbagFrames(root, split, transform=transform, **kw)


def _synthetic(
    root: Path | None, split: str, transform: Transform | None, seed: int = 0, **kw: Any
) -> SegmentationDataset:
    """Synthetic scenes; each split gets its own stream of scenes derived from ``seed``."""
    from slimseg_ros.data.synthetic import SyntheticScenes

    split_seed = int(seed) * 1_000_003 + zlib.crc32(split.encode())
    return SyntheticScenes(seed=split_seed, transform=transform, **kw)


def _no_extra(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ValueError(f"dataset {name!r} takes no options, got {', '.join(sorted(kwargs))}")


_BUILDERS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": _camvid,
    "cityscapes": _cityscapes,
    "folder": _folder,
    "rosbag": _rosbag,
    "synthetic": _synthetic,
}

DATASET_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_dataset(
    name: str,
    root: str | Path | None,
    split: str,
    transform: Transform | None = None,
    **options: Any,
) -> SegmentationDataset:
    """Create a dataset by name.

    Args:
        name: One of :data:`DATASET_NAMES`.
        root: Dataset root directory (ignored by ``synthetic``).
        split: Split name (``train``, ``val``, ``test``).
        transform: Optional ``transform(image, label)`` applied by ``__getitem__``.
        **options: Dataset-specific options: ``camvid`` takes ``sequences`` and
            ``exclude_sequences`` (lists of sequence names such as ``0006R0``); ``folder`` takes ``classes`` (spec name, YAML path
            or ClassSpec; default ``{root}/classes.yaml``) and reads ``{root}/images/{split}/``
            with ``{root}/masks/{split}/``; ``rosbag`` reads the bag directory ``root``, splits
            ``all``/``train``/``val`` in time, and takes ``image_topic``, ``labels_topic``,
            ``classes`` (default ``camvid``), ``val_fraction`` and ``require_labels``;
            ``synthetic`` takes the arguments of
            :class:`SyntheticScenes` (``n``, ``size``, ``num_classes``, ``seed``, ...).

    Returns:
        The dataset.

    Raises:
        ValueError: Unknown name, missing directory or empty split.
    """
    key = str(name).lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(_BUILDERS)}")
    if root is None and key != "synthetic":
        raise ValueError(f"dataset {key!r} needs a data root directory")
    return _BUILDERS[key](Path(root) if root is not None else None, split, transform, **options)
