"""The accuracy table: `slimseg eval --input-sizes` scores every point and stores it beside the
checkpoint, where the node finds it."""

from __future__ import annotations

import json
import shutil

import pytest
from test_data_camvid import _write_camvid

from slimseg_ros.cli.main import main
from slimseg_ros.runtime.accuracy_table import (
    AccuracyTableError, accuracy_path, load_accuracy, point_accuracy)
from slimseg_ros.runtime.cache import file_sha256
from slimseg_ros.runtime.points import OperatingPoint


@pytest.fixture
def scored(tmp_path, make_checkpoint):
    checkpoint = tmp_path / "model.safetensors"
    shutil.copy(make_checkpoint(), checkpoint)
    _write_camvid(tmp_path / "data", "val", ["0001TP_1.png", "0001TP_2.png"], h=48, w=64)
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", "camvid",
                 "--data-root", str(tmp_path / "data"), "--split", "val", "--widths",
                 "0.25,1.0", "--input-sizes", "64x64,32x32", "--save-accuracy",
                 "--backend", "torch", "--json", str(out)]) == 0
    return checkpoint, json.loads(out.read_text())


def test_eval_scores_every_point_and_keeps_widths_for_the_first_size(scored) -> None:
    _, doc = scored
    assert set(doc["points"]) == {"0.25@64x64", "1.0@64x64", "0.25@32x32", "1.0@32x32"}
    assert doc["input_sizes"] == [[64, 64], [32, 32]] and doc["images"] == 2
    assert doc["widths"]["1.0"]["miou"] == doc["points"]["1.0@64x64"]["miou"]
    assert all(0.0 <= r["miou"] <= 1.0 for r in doc["points"].values())


def test_the_eval_json_names_the_model_by_its_hash(scored) -> None:
    checkpoint, doc = scored
    assert doc["model_sha256"] == file_sha256(checkpoint)  # docs/model.md is keyed by it


def test_the_table_beside_the_checkpoint_is_read_back_for_that_checkpoint(scored) -> None:
    checkpoint, doc = scored
    path = accuracy_path(checkpoint)
    assert path.name == "model.points.json"
    table = load_accuracy(path, file_sha256(checkpoint))
    assert table[OperatingPoint(0.25, (32, 32))] == pytest.approx(
        doc["points"]["0.25@32x32"]["miou"])
    with pytest.raises(AccuracyTableError, match="written for another checkpoint"):
        load_accuracy(path, "0" * 64)
    with pytest.raises(AccuracyTableError, match="no point 0.5@64x64"):
        point_accuracy(table, [OperatingPoint(0.5, (64, 64))])


def test_save_accuracy_without_sizes_is_a_one_line_error(tmp_path, make_checkpoint,
                                                         capsys) -> None:
    _write_camvid(tmp_path / "data", "val", ["0001TP_1.png"], h=32, w=32)
    assert main(["eval", "--checkpoint", str(make_checkpoint()), "--dataset", "camvid",
                 "--data-root", str(tmp_path / "data"), "--save-accuracy"]) == 2
    assert "--save-accuracy needs --input-sizes" in capsys.readouterr().err
