"""``export_engines`` (behind ``slimseg export``): each operating point built once, then served as
cached, to the node as well."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slimseg_ros.model.checkpoint import CheckpointError
from slimseg_ros.runtime.cache import MANIFEST_NAME
from slimseg_ros.runtime.deps import BackendUnavailableError
from slimseg_ros.runtime.export import export_engines
from slimseg_ros.runtime.loader import load_point_engine

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


@pytest.mark.slow
def test_every_input_size_is_exported_and_the_node_engine_loads_them_all_from_the_cache(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    sizes = [(64, 96), (48, 64)]
    out = tmp_path / "engines"
    records = export_engines(checkpoint, "onnx", "0.25,1.0", None, "fp32", out, input_sizes=sizes)
    assert [(r.input_size, r.width, r.status) for r in records] == [
        ((64, 96), 0.25, "built"), ((64, 96), 1.0, "built"),
        ((48, 64), 0.25, "built"), ((48, 64), 1.0, "built")]
    assert len({r.path for r in records}) == 4

    lines: list[str] = []
    engine = load_point_engine(checkpoint, input_sizes=sizes, backend="onnxruntime",
                               device="cpu", cache_dir=out, warmup_repeats=1, log=lines.append)
    try:
        assert list(engine.sizes) == sizes
        loads = [line for line in lines if "onnx" in line and ("cache hit" in line
                                                                or "built" in line)]
        # the node builds every width: the two exported ones per size come from the cache
        assert sum("cache hit" in line for line in loads) == 4, lines
    finally:
        engine.close()

    from slimseg_ros.cli.main import main
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--widths",
                 "0.25", "--input-sizes", "64x96,48x64", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| 64x96 | 0.25 | 0.0 |" in table and "| 48x64 | 0.25 | 0.0 |" in table


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "plan"}, "format must be one of onnx, tensorrt"),
    ({"precision": "int8"}, "precision must be fp32 or fp16"),
    ({"input_size": (16, 96)}, r"input_size must be \[H, W\] with both >= 32"),
    ({"widths": "0.6"}, "not one of the model's widths"),
    ({"input_sizes": [(64, 96), (64, 96)]}, "given twice"),
    ({"input_sizes": [(64, 96), (16, 32)]}, "at least 32x32"),
    ({"input_sizes": [(64, 96)], "input_size": SIZE}, "input_size or input_sizes, not both"),
])
def test_bad_arguments_are_one_line_errors(checkpoint: Path, tmp_path: Path, kwargs: dict,
                                           message: str) -> None:
    args = {"fmt": "onnx", "widths": "all", "precision": "fp32"} | kwargs
    if "input_sizes" not in kwargs:
        args.setdefault("input_size", SIZE)
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
