"""``build_dataset``: one entry point from a dataset name to a dataset object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from slimseg_ros.data.base import SegmentationDataset, Transform


def _camvid(root: Path, split: str, transform: Transform | None, **kw: Any) -> SegmentationDataset:
    from slimseg_ros.data.camvid import CamVidDataset

    _no_extra("camvid", kw)
    return CamVidDataset(root, split, transform=transform)


def _no_extra(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ValueError(f"dataset {name!r} takes no options, got {', '.join(sorted(kwargs))}")


_BUILDERS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid": _camvid,
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
        **options: Dataset-specific options (see each builder).

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
