"""The tensorrt backend up to the ``torch_tensorrt.compile`` call, and through it with a stand-in.

``torch_tensorrt`` cannot be installed on the development machines: these tests check what would
be compiled (the exported program) and with which settings, run the whole cache flow with a
recording stand-in whose "compile" returns the program unchanged, and skip the real compile
unless torch_tensorrt and a CUDA device are present.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from slimseg_ros.model.checkpoint import random_meta
from slimseg_ros.model.config import ModelConfig
from slimseg_ros.model.slimseg import SlimSegNet
from slimseg_ros.runtime import tensorrt_backend
from slimseg_ros.runtime.deps import BackendUnavailableError
from slimseg_ros.runtime.tensorrt_backend import (
    DEFAULT_WORKSPACE_BYTES,
    TensorRTPipeline,
    build_tensorrt_engines,
    compile_settings,
    export_program,
    resolve_cuda_device,
)
from slimseg_ros.runtime.torch_backend import pipeline_for_width

SIZE = (64, 96)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model_and_meta() -> tuple[SlimSegNet, Any]:
    torch.manual_seed(0)
    model = SlimSegNet(ModelConfig(widths=(0.5, 1.0))).eval()
    return model, random_meta(model.config, SIZE)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_tensorrt_form_of_the_pipeline_gives_the_same_labels(model_and_meta,
                                                             upsample: str) -> None:
    model, meta = model_and_meta
    image = torch.randint(0, 256, (1, *SIZE, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(1))
    for width in model.widths:
        pipe = pipeline_for_width(model, meta, width, upsample)
        with torch.no_grad():
            got, want = TensorRTPipeline(pipe)(image), pipe(image)
        assert got.dtype == torch.uint8 and got.shape == SIZE
        assert torch.equal(got, want)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_exported_program_has_a_static_uint8_input_and_the_precision_in_its_weights(
        model_and_meta, precision: str) -> None:
    model, meta = model_and_meta
    program, example = export_program(model, meta, 0.5, precision, "nearest", CPU)
    assert example.dtype == torch.uint8 and tuple(example.shape) == (1, *SIZE, 3)
    specs = program.graph_signature.input_specs
    (placeholder,) = [s for s in specs if s.kind.name == "USER_INPUT"]
    value = next(n for n in program.graph.nodes if n.name == placeholder.arg.name).meta["val"]
    assert value.dtype == torch.uint8 and tuple(value.shape) == (1, *SIZE, 3)  # static shape
    float_weights = {t.dtype for t in program.state_dict.values() if t.is_floating_point()}
    assert float_weights == {torch.float16 if precision == "fp16" else torch.float32}
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "aten.argmax.default" in targets  # post-processing stays inside the engine
    if precision == "fp32":
        image = torch.randint(0, 256, example.shape, dtype=torch.uint8)
        assert torch.equal(program.module()(image), pipeline_for_width(model, meta, 0.5)(image))


def test_compile_settings_follow_the_torch_tensorrt_version() -> None:
    dev = torch.device("cuda", 0)
    old = compile_settings("fp16", dev, torch_tensorrt_version="2.8.0")
    assert old["ir"] == "dynamo" and old["device"] == dev
    assert old["require_full_compilation"] is True and old["min_block_size"] == 1
    assert old["workspace_size"] == DEFAULT_WORKSPACE_BYTES
    assert old["use_explicit_typing"] is True  # 2.8/2.9 default to weak typing
    assert old["disable_tf32"] is False
    assert old["cache_built_engines"] is False and old["reuse_cached_engines"] is False
    assert "enabled_precisions" not in old  # raises on 2.10-2.12, removed later
    assert "use_explicit_typing" not in compile_settings("fp16", dev,
                                                         torch_tensorrt_version="2.13.0")
    assert "use_explicit_typing" not in compile_settings("fp16", dev,
                                                         torch_tensorrt_version="2.14.0.dev0")
    assert compile_settings("fp16", dev, torch_tensorrt_version="2.12.1+cu126")[
        "use_explicit_typing"] is True
    fp32 = compile_settings("fp32", dev, workspace_size=1 << 28, timing_cache_path="/x/t.bin")
    assert fp32["disable_tf32"] is True  # fp32 means fp32, not TF32
    assert fp32["workspace_size"] == 1 << 28 and fp32["timing_cache_path"] == "/x/t.bin"
    with pytest.raises(ValueError, match="precision must be fp32 or fp16"):
        compile_settings("int8", dev)
    with pytest.raises(ValueError, match="workspace_size"):
        compile_settings("fp16", dev, workspace_size=1024)


class FakeTorchTensorRT(types.SimpleNamespace):
    """Records compile/save calls; 'compiles' to the exported program itself."""

    def __init__(self, version: str = "2.8.0") -> None:
        super().__init__(__version__=version, compiled=[], saved=[])

    class Input:
        def __init__(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
            self.shape, self.dtype = shape, dtype

    def compile(self, module: Any, inputs: list[Any], **settings: Any) -> Any:
        self.compiled.append((module, inputs, settings))
        return module

    def save(self, module: Any, path: str, output_format: str, inputs: list[Any]) -> None:
        self.saved.append((path, output_format, inputs))
        torch.export.save(module, path)


@pytest.mark.slow
def test_build_flow_compiles_each_width_once_then_loads_from_the_cache(
        model_and_meta, tmp_path: Path) -> None:
    model, meta = model_and_meta
    trt = FakeTorchTensorRT()
    runners, dev, outcomes, notes = build_tensorrt_engines(
        model, meta, precision="fp32", cache_dir=tmp_path, trt=trt, target=CPU)
    assert dev == CPU and sorted(runners) == [0.5, 1.0]
    assert [o.status for o in outcomes.values()] == ["built", "built"]
    assert len(trt.compiled) == 2
    program, inputs, settings = trt.compiled[0]
    assert isinstance(program, torch.export.ExportedProgram)
    assert (inputs[0].shape, inputs[0].dtype) == ((1, *SIZE, 3), torch.uint8)
    assert settings["ir"] == "dynamo" and settings["require_full_compilation"] is True
    assert settings["timing_cache_path"].startswith(str(tmp_path))
    assert all(fmt == "exported_program" for _, fmt, _ in trt.saved)

    image = np.random.default_rng(2).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    for width, run in runners.items():
        want = pipeline_for_width(model, meta, width)(torch.from_numpy(image)).numpy()
        assert np.array_equal(run(image), want)

    again = FakeTorchTensorRT()
    runners, _, outcomes, _ = build_tensorrt_engines(
        model, meta, precision="fp32", cache_dir=tmp_path, trt=again, target=CPU)
    assert again.compiled == [] and [o.status for o in outcomes.values()] == ["hit", "hit"]
    assert np.array_equal(runners[0.5](image),
                          pipeline_for_width(model, meta, 0.5)(torch.from_numpy(image)).numpy())


def test_engine_key_holds_what_a_serialized_engine_depends_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensorrt_backend, "cuda_device_name", lambda i=0: "Orin sm_87")
    monkeypatch.setattr(tensorrt_backend, "jetson_release", lambda: "R36.4.3")
    key = tensorrt_backend.tensorrt_key("ab" * 32, 0.5, SIZE, "fp16", "nearest", 0)
    assert key.fmt == "tensorrt" and key.slot.endswith("w0.5_64x96_fp16_nearest.ep")
    assert {"torch", "torch_tensorrt", "tensorrt", "gpu", "l4t"} <= set(key.toolchain)
    assert key.toolchain["gpu"] == "Orin sm_87" and key.toolchain["l4t"] == "R36.4.3"


def test_compile_failure_names_the_way_out(model_and_meta, tmp_path: Path) -> None:
    model, meta = model_and_meta
    trt = FakeTorchTensorRT()

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("Unsupported operator aten.index.Tensor")

    trt.compile = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="could not compile.*aten.index.*onnxruntime"):
        build_tensorrt_engines(model, meta, cache_dir=tmp_path, trt=trt, target=CPU,
                               widths=[0.5])
    assert not list(tmp_path.rglob("*.ep"))  # nothing half-built left behind


def test_tensorrt_refuses_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="CUDA device only"):
        resolve_cuda_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA device.*Jetson"):
        resolve_cuda_device("auto")


def test_missing_torch_tensorrt_is_reported_before_anything_is_built(
        model_and_meta, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, meta = model_and_meta
    monkeypatch.setitem(__import__("sys").modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="torch_tensorrt"):
        build_tensorrt_engines(model, meta, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()


@pytest.mark.gpu
@pytest.mark.skipif(
    importlib.util.find_spec("torch_tensorrt") is None or not torch.cuda.is_available(),
    reason="needs torch_tensorrt and a CUDA device (torch_tensorrt cannot be installed on the "
    "development machines; run this on a Jetson)",
)
def test_real_tensorrt_engines_match_torch(model_and_meta, tmp_path: Path) -> None:
    model, meta = model_and_meta
    runners, dev, _, _ = build_tensorrt_engines(model, meta, precision="fp32",
                                                cache_dir=tmp_path, widths=[0.5])
    image = np.random.default_rng(5).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    want = pipeline_for_width(model, meta, 0.5)(torch.from_numpy(image)).numpy()
    assert (runners[0.5](image) == want).mean() >= 0.999
