"""Class specs: built-in YAMLs, the config copies, label lookup tables, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimseg_ros.data.class_spec import CLASSES_DIR, builtin_class_specs, load_class_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["camvid", "cityscapes"])
def test_config_copies_match_package_data(name: str) -> None:
    packaged = (CLASSES_DIR / f"{name}.yaml").read_bytes()
    assert (REPO / "config" / "classes" / f"{name}.yaml").read_bytes() == packaged


def test_every_packaged_spec_has_a_config_copy() -> None:
    config_names = sorted(p.stem for p in (REPO / "config" / "classes").glob("*.yaml"))
    assert config_names == builtin_class_specs()


def test_camvid_spec() -> None:
    spec = load_class_spec("camvid")
    assert spec.names[:4] == ("Sky", "Building", "Pole", "Road")
    assert spec.names[-1] == "Bicyclist"
    assert spec.num_classes == 11 and spec.ignore_index == 255
    lut = spec.label_lut()
    assert lut[:11].tolist() == list(range(11))
    assert lut[11] == 255 and lut[200] == 255


def test_cityscapes_lut_maps_label_ids_to_train_ids() -> None:
    spec = load_class_spec("cityscapes")
    assert spec.num_classes == 19
    lut = spec.label_lut()
    # road, sidewalk, building, sky, person, car, bicycle (cityscapesScripts labels.py)
    assert [lut[i] for i in (7, 8, 11, 23, 24, 26, 33)] == [0, 1, 2, 10, 11, 13, 18]
    # unlabeled, ego vehicle, ground, parking, guard rail, caravan, license plate (-1 -> 255)
    assert all(lut[i] == 255 for i in (0, 1, 6, 9, 14, 29, 255))
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


def test_load_from_path_and_colorize(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("classes:\n  - {name: a, color: [1, 2, 3]}\n  - {name: b, color: [4, 5, 6]}\n")
    spec = load_class_spec(path)
    assert spec.names == ("a", "b") and spec.ignore_index == 255 and spec.name == "mine"
    rgb = spec.colorize(np.array([[0, 1, 255]], dtype=np.uint8))
    assert rgb.tolist() == [[[1, 2, 3], [4, 5, 6], [0, 0, 0]]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("classes: []\n", "at least one class"),
        ("classes:\n  - {name: a}\n", "color"),
        ("classes:\n  - {name: a, color: [1, 2, 300]}\n", "0..255"),
        ("ignore_index: 0\nclasses:\n  - {name: a, color: [1, 2, 3]}\n", "ignore_index"),
        ("classes:\n  - {name: a, color: [1, 2, 3]}\nraw_label_map: {5: 3}\n", "raw_label_map"),
        ("just a string\n", "classes"),
    ],
)
def test_bad_spec_files_give_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_class_spec(path)


def test_unknown_name_lists_builtins() -> None:
    with pytest.raises(ValueError, match="camvid, cityscapes"):
        load_class_spec("kitti")
