"""Folder datasets: stem pairing, id masks, colour masks, class specs, the factory layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.data import FolderDataset, build_dataset, load_class_spec

SPEC_YAML = """\
classes:
  - {name: ground, color: [10, 20, 30]}
  - {name: wall, color: [200, 0, 0]}
  - {name: robot, color: [0, 255, 0]}
"""


def _setup(tmp_path: Path, colour_masks: bool = False) -> tuple[Path, Path, Path]:
    images, masks = tmp_path / "img", tmp_path / "mask"
    images.mkdir()
    masks.mkdir()
    spec_path = tmp_path / "classes.yaml"
    spec_path.write_text(SPEC_YAML)
    ids = np.array([[0, 1, 2], [2, 7, 0]], dtype=np.uint8)  # 7 is not a class -> ignore
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 1] = 99
    for stem in ("b", "a"):
        cv2.imwrite(str(images / f"{stem}.jpg" if stem == "a" else images / f"{stem}.png"),
                    cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if colour_masks:
            palette = np.array([[10, 20, 30], [200, 0, 0], [0, 255, 0]], dtype=np.uint8)
            colour = np.zeros((2, 3, 3), dtype=np.uint8)
            colour[ids < 3] = palette[ids[ids < 3]]
            colour[ids == 7] = (1, 2, 3)  # unknown colour
            cv2.imwrite(str(masks / f"{stem}.png"), cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
        else:
            cv2.imwrite(str(masks / f"{stem}.png"), ids)
    return images, masks, spec_path


@pytest.mark.parametrize("colour_masks", [False, True])
def test_pairs_by_stem_and_maps_masks(tmp_path: Path, colour_masks: bool) -> None:
    images, masks, spec_path = _setup(tmp_path, colour_masks)
    ds = FolderDataset(images, masks, spec_path)
    assert len(ds) == 2 and [ds.name(0), ds.name(1)] == ["a", "b"]
    image, label = ds[1]
    assert image.shape == (2, 3, 3) and image[0, 0].tolist() == [0, 99, 0]
    assert label.tolist() == [[0, 1, 2], [2, 255, 0]]
    assert ds.class_spec.names == ("ground", "wall", "robot")


def test_builtin_spec_and_classspec_objects(tmp_path: Path) -> None:
    images, masks, _ = _setup(tmp_path)
    assert FolderDataset(images, masks, "camvid").num_classes == 11
    spec = load_class_spec("cityscapes")  # labelIds 0, 1, 2 are void; 7 is road (train id 0)
    _, label = FolderDataset(images, masks, spec)[0]
    assert label.tolist() == [[255, 255, 255], [255, 0, 255]]


def test_image_without_mask_is_an_error(tmp_path: Path) -> None:
    images, masks, spec_path = _setup(tmp_path)
    (masks / "a.png").unlink()
    with pytest.raises(ValueError, match="1 of 2 images have no label.*a.jpg"):
        FolderDataset(images, masks, spec_path)
    with pytest.raises(ValueError, match="mask folder not found"):
        FolderDataset(images, tmp_path / "nope", spec_path)


def test_factory_folder_layout(tmp_path: Path) -> None:
    images, masks, spec_path = _setup(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    images.rename(tmp_path / "images" / "val")
    masks.rename(tmp_path / "masks" / "val")
    ds = build_dataset("folder", tmp_path, "val")  # finds {root}/classes.yaml
    assert len(ds) == 2 and ds.num_classes == 3
    with pytest.raises(ValueError, match=str(tmp_path / "images" / "train")):
        build_dataset("folder", tmp_path, "train")
    spec_path.unlink()
    with pytest.raises(ValueError, match="classes.yaml"):
        build_dataset("folder", tmp_path, "val")
    assert build_dataset("folder", tmp_path, "val", classes="camvid").num_classes == 11
