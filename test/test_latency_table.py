"""The device latency table: `slimseg profile`, its key, and refusing another device's table."""

from __future__ import annotations

import json

import pytest

from slimseg_ros.cli.main import main
from slimseg_ros.model import ModelConfig
from slimseg_ros.runtime.latency_table import (
    LatencyTableError, read_table, table_latency_s, table_mismatch)
from slimseg_ros.runtime.points import OperatingPoint

CONFIG = ModelConfig(num_classes=5, head_channels=32)


@pytest.fixture(scope="module")
def table(make_checkpoint, tmp_path_factory):
    path = make_checkpoint(CONFIG, input_size=(64, 96))
    out = tmp_path_factory.mktemp("profile") / "table.json"
    assert main(["profile", "--checkpoint", str(path), "--backend", "torch", "--device", "cpu",
                 "--input-sizes", "64x96,32x48", "--repeats", "4", "--block", "2",
                 "--out", str(out)]) == 0
    return out


def test_profile_writes_every_point_with_percentiles_and_its_key(table) -> None:
    doc = json.loads(table.read_text())
    assert set(doc["points"]) == {f"{w}@{s}" for w in ("0.25", "0.5", "0.75", "1.0")
                                  for s in ("64x96", "32x48")}
    for row in doc["points"].values():
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] and row["samples"] == 4
    key = doc["key"]
    assert key["backend"] == "torch" and key["precision"] == "fp32" and key["threads"] == 2
    assert key["device"].startswith("cpu: ") and len(key["model_sha256"]) == 64
    assert {"torch", "onnxruntime", "slimseg_ros"} <= set(key["versions"])
    assert doc["camera_size"] == [64, 96] and len(doc["loadavg"]) == 3


def test_a_read_table_gives_p50_seconds_per_point(table) -> None:
    doc = read_table(table)
    points = [OperatingPoint(0.5, (32, 48)), OperatingPoint(1.0, (64, 96))]
    latency = table_latency_s(doc, points)
    assert latency[points[0]] == pytest.approx(doc["points"]["0.5@32x48"]["p50_ms"] / 1e3)
    with pytest.raises(LatencyTableError, match="no point 0.5@100x100"):
        table_latency_s(doc, [OperatingPoint(0.5, (100, 100))])


@pytest.mark.parametrize("change, words", [
    ({"threads": 4}, "threads: table 4, here 2"),
    ({"device": "cuda: Orin"}, "device: table 'cuda: Orin'"),
    ({"backend": "onnxruntime"}, "backend: table 'onnxruntime', here 'torch'"),
    ({"versions": {"torch": "2.0.0"}}, "torch version: table 2.0.0"),
])
def test_a_table_of_another_setup_is_named_by_what_differs(table, change, words) -> None:
    key = read_table(table)["key"]
    other = {**key, **change}
    if "versions" in change:
        other["versions"] = {**key["versions"], **change["versions"]}
    assert table_mismatch(key, key) is None
    assert words in table_mismatch(other, key)


@pytest.mark.parametrize("content, words", [
    ("not json", "not a readable JSON"), ('{"format": "x"}', "not a latency table"),
    ('{"format": "slimseg-latency-table/1", "key": {}, "points": {"0.5@64x96": {}}}',
     "no positive p50_ms"),
])
def test_bad_table_files_are_one_line_errors(tmp_path, content, words) -> None:
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(LatencyTableError, match=words):
        read_table(path)
    with pytest.raises(LatencyTableError, match="no such latency table"):
        read_table(tmp_path / "missing.json")
