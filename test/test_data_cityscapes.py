"""Cityscapes reader on a tiny generated tree: labelIds -> train ids, ignore, pairing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.data import CityscapesDataset, build_dataset


def _write_frame(root: Path, split: str, city: str, frame: str, label_ids: np.ndarray) -> None:
    image_dir = root / "leftImg8bit" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros(label_ids.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = 250  # pure red in RGB: catches a missing BGR->RGB conversion
    cv2.imwrite(str(image_dir / f"{city}_{frame}_leftImg8bit.png"),
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(label_dir / f"{city}_{frame}_gtFine_labelIds.png"), label_ids)
    # Other gtFine files that must not be mistaken for labels.
    cv2.imwrite(str(label_dir / f"{city}_{frame}_gtFine_color.png"), rgb)
    cv2.imwrite(str(label_dir / f"{city}_{frame}_gtFine_instanceIds.png"), label_ids)


def test_label_ids_map_to_train_ids(tmp_path: Path) -> None:
    # road 7, sidewalk 8, sky 23, bicycle 33, unlabeled 0, ego vehicle 1, parking 9, plate 255
    ids = np.array([[7, 8, 23, 33], [0, 1, 9, 255]], dtype=np.uint8)
    _write_frame(tmp_path, "val", "ulm", "000000_000019", ids)
    ds = CityscapesDataset(tmp_path, "val")
    image, label = ds[0]
    assert image.shape == (2, 4, 3) and image[0, 0].tolist() == [250, 0, 0]
    assert label.dtype == np.uint8
    assert label.tolist() == [[0, 1, 10, 18], [255, 255, 255, 255]]
    assert ds.num_classes == 19 and ds.name(0) == "ulm_000000_000019"


def test_samples_sorted_across_cities(tmp_path: Path) -> None:
    ids = np.full((2, 2), 7, dtype=np.uint8)
    for city, frame in [("zurich", "000001_000019"), ("aachen", "000002_000019"),
                        ("aachen", "000000_000019")]:
        _write_frame(tmp_path, "train", city, frame, ids)
    ds = build_dataset("cityscapes", tmp_path, "train")
    assert [ds.name(i) for i in range(len(ds))] == [
        "aachen_000000_000019", "aachen_000002_000019", "zurich_000001_000019"]


def test_missing_trees_and_labels_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leftImg8bit"):
        CityscapesDataset(tmp_path, "train")
    (tmp_path / "leftImg8bit" / "train" / "bonn").mkdir(parents=True)
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty"):
        CityscapesDataset(tmp_path, "train")
    _write_frame(tmp_path, "train", "bonn", "000000_000019", np.zeros((2, 2), np.uint8))
    (tmp_path / "gtFine/train/bonn/bonn_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(ValueError, match="bonn_000000_000019_gtFine_labelIds.png"):
        CityscapesDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="train, val, test"):
        CityscapesDataset(tmp_path, "trainextra")
