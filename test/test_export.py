"""``export_engines`` (behind ``slimseg export``): each width built once, then served as cached."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slimseg_ros.model.checkpoint import CheckpointError
from slimseg_ros.runtime.cache import MANIFEST_NAME
from slimseg_ros.runtime.deps import BackendUnavailableError
from slimseg_ros.runtime.export import export_engines

SIZE = (64, 96)


@pytest.fixture(scope="module")
def checkpoint(make_checkpoint) -> Path:
    return make_checkpoint(input_size=(360, 480))


@pytest.mark.slow
def test_onnx_export_builds_every_width_then_reports_them_cached(checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    lines: list[str] = []
    out = tmp_path / "engines"
    records = export_engines(checkpoint, "onnx", "all", SIZE, "fp32", out, lines.append)
    assert [r.width for r in records] == [0.25, 0.5, 0.75, 1.0]
    for r in records:
        assert (r.fmt, r.status) == ("onnx", "built")
        assert r.path.is_file() and r.path.stat().st_size == r.size_bytes > 0
        assert r.path.is_relative_to(out) and r.build_seconds > 0
        assert r.agreement == 1.0  # fp32 ONNX Runtime vs torch on the check frame
    sizes = [r.size_bytes for r in records]
    assert sizes == sorted(sizes)  # wider widths hold more weights
    assert len(json.loads((out / MANIFEST_NAME).read_text())["entries"]) == 4
    assert any("w1: built" in line and "MB" in line for line in lines)

    again = export_engines(checkpoint, "onnx", "0.5,1.0", SIZE, "fp32", out)
    assert [(r.width, r.status, r.build_seconds) for r in again] == [(0.5, "cached", 0.0),
                                                                       (1.0, "cached", 0.0)]
    assert [r.path for r in again] == [records[1].path, records[3].path]


@pytest.mark.slow
def test_fp16_onnx_can_be_exported_on_a_cpu_machine(checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    (record,) = export_engines(checkpoint, "onnx", "0.25", SIZE, "fp16", tmp_path)
    assert record.status == "built" and "fp16" in record.path.name
    graph = onnx.load(str(record.path)).graph
    assert {t.data_type for t in graph.initializer if t.dims and len(t.dims) == 4} == {
        onnx.TensorProto.FLOAT16}
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert record.agreement is not None and record.agreement > 0.9


@pytest.mark.slow
def test_bilinear_upsampling_exports_and_matches_torch(checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    (record,) = export_engines(checkpoint, "onnx", "0.5", SIZE, "fp32", tmp_path,
                               upsample="bilinear")
    assert record.status == "built" and record.path.name.endswith("_bilinear.onnx")
    assert record.agreement is not None and record.agreement >= 0.999


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "plan"}, "format must be one of onnx, tensorrt"),
    ({"precision": "int8"}, "precision must be fp32 or fp16"),
    ({"input_size": (16, 96)}, r"input_size must be \[H, W\] with both >= 32"),
    ({"widths": "0.6"}, "not one of the model's widths"),
])
def test_bad_arguments_are_one_line_errors(checkpoint: Path, tmp_path: Path, kwargs: dict,
                                           message: str) -> None:
    args = {"fmt": "onnx", "widths": "all", "input_size": SIZE, "precision": "fp32"} | kwargs
    with pytest.raises(ValueError, match=message):
        export_engines(checkpoint, out_dir=tmp_path / "never", **args)
    assert not (tmp_path / "never").exists()


def test_tensorrt_export_without_torch_tensorrt_says_how_to_get_it(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="torch_tensorrt.*pip install.*jetson"):
        export_engines(checkpoint, "tensorrt", "all", SIZE, "fp16", tmp_path / "engines")
    assert not (tmp_path / "engines").exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        export_engines(tmp_path / "absent.safetensors", "onnx", "all", SIZE, "fp32",
                       tmp_path / "engines")
    assert not (tmp_path / "engines").exists()
