"""Pairing image files with label files, with one-line errors that name the expected paths."""

from __future__ import annotations

from pathlib import Path

from slimseg_ros.data.io import list_images


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise a ValueError naming what was expected."""
    if not path.is_dir():
        raise ValueError(f"{what} not found: expected a directory at {path}")
    return path


def pair_by_stem(
    images: list[Path],
    labels: list[Path],
    image_suffix: str = "",
    label_suffix: str = "",
    labels_dir: Path | None = None,
) -> list[tuple[Path, Path]]:
    """Pair images and labels whose names agree once the suffixes are removed.

    Args:
        images: Image files.
        labels: Label files.
        image_suffix: Part of an image name after the shared key (``_leftImg8bit.png``); when
            empty, the file stem is the key.
        label_suffix: Same for label names.
        labels_dir: Directory named in the error message when labels are missing.

    Returns:
        ``(image, label)`` pairs sorted by key.

    Raises:
        ValueError: Some image has no label.
    """

    def key(path: Path, suffix: str) -> str:
        return path.name[: -len(suffix)] if suffix else path.stem

    by_key = {key(p, label_suffix): p for p in labels}
    pairs = []
    missing = []
    for image in images:
        k = key(image, image_suffix)
        if k in by_key:
            pairs.append((k, image, by_key[k]))
        else:
            missing.append(image)
    if missing:
        where = labels_dir if labels_dir is not None else "the label directory"
        raise ValueError(
            f"{len(missing)} of {len(images)} images have no label in {where} "
            f"(first: {missing[0].name}, expected {key(missing[0], image_suffix)}"
            f"{label_suffix or '.png'})"
        )
    pairs.sort(key=lambda t: t[0])
    return [(image, label) for _, image, label in pairs]


__all__ = ["list_images", "pair_by_stem", "require_dir"]
