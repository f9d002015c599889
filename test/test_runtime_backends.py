"""Backend registry, ``auto``'s choice, missing dependencies, and the ONNX Runtime backend."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from slimseg_ros.model.checkpoint import random_meta
from slimseg_ros.model.config import ModelConfig
from slimseg_ros.model.slimseg import SlimSegNet
from slimseg_ros.runtime import backends, benchmark, load_engine, onnx_backend, timing
from slimseg_ros.runtime.backends import (
    BACKEND_NAMES,
    CPU_CHOICE_FILE,
    choose_backend,
    measure_cpu_backends,
)
from slimseg_ros.runtime.deps import BackendUnavailableError
from slimseg_ros.runtime.onnx_backend import resolve_ort_device, session_providers

SIZE = (64, 96)
TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_registry_offers_the_three_backends() -> None:
    assert set(BACKEND_NAMES) == {"torch", "onnxruntime", "tensorrt"}
    with pytest.raises(ValueError, match="unknown backend 'trt'; available: torch"):
        backends.build_runners("trt", None, None)  # type: ignore[arg-type]


# -- auto on a GPU ------------------------------------------------------------------------------


@pytest.fixture()
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backends, "cuda_device_name", lambda index=0: "Orin sm_87")


def _missing(*_a: object) -> types.ModuleType:
    raise BackendUnavailableError("backend tensorrt needs torch_tensorrt, which cannot be "
                                  "imported (No module); on a Jetson install it")


def test_auto_prefers_tensorrt_on_a_gpu(fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "import_torch_tensorrt",
                        lambda: types.SimpleNamespace(__version__="2.8.0"))
    monkeypatch.setattr(backends, "onnxruntime_providers", lambda: [TRT, CUDA, CPU])
    name, why = choose_backend("auto", "fp16")
    assert name == "tensorrt"
    assert "Orin sm_87" in why and "2.8.0" in why


def test_auto_falls_back_to_onnxruntime_cuda_then_torch_cuda(
        fake_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "import_torch_tensorrt", _missing)
    monkeypatch.setattr(backends, "onnxruntime_providers", lambda: [CUDA, CPU])
    name, why = choose_backend("cuda:0", "fp32")
    assert name == "onnxruntime" and "torch_tensorrt" in why and "CUDA provider" in why
    monkeypatch.setattr(backends, "onnxruntime_providers", lambda: [CPU])
    name, why = choose_backend("auto", "fp32")
    assert name == "torch" and "no CUDA provider" in why


def test_auto_with_device_cpu_ignores_the_gpu(fake_gpu: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "import_torch_tensorrt",
                        lambda: types.SimpleNamespace(__version__="2.8.0"))
    monkeypatch.setattr(backends, "measure_cpu_backends",
                        lambda *a, **k: ({"torch": 50.0, "onnxruntime": 30.0}, True))
    assert choose_backend("cpu", "fp32")[0] == "onnxruntime"


# -- auto on a CPU ------------------------------------------------------------------------------


def test_auto_on_cpu_takes_the_faster_measured_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for ms, expected in (({"torch": 40.0, "onnxruntime": 25.0}, "onnxruntime"),
                         ({"torch": 20.0, "onnxruntime": 25.0}, "torch")):
        monkeypatch.setattr(backends, "measure_cpu_backends", lambda *a, ms=ms, **k: (ms, False))
        name, why = choose_backend("auto", "fp32")
        assert name == expected
        assert f"{ms[expected]:.1f} vs" in why and "measured now" in why


def test_auto_on_cpu_without_onnxruntime_is_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails like a missing package
    name, why = choose_backend("auto", "fp32")
    assert name == "torch" and "onnxruntime" in why


def test_auto_without_a_gpu_refuses_gpu_only_requests_in_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^device 'cuda' requested, but no CUDA device is "
                                         r"visible \(use device auto or cpu\)$"):
        choose_backend("cuda", "fp32")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        choose_backend("auto", "fp16")
    notes: list[str] = []
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        load_engine(backend="auto", precision="fp16", allow_random=True, input_size=SIZE,
                    log=notes.append)
    assert not any("CUDA" in n for n in notes)  # said once, by the error alone


def test_cpu_measurement_is_cached_per_machine_and_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = SlimSegNet(ModelConfig(widths=(0.5, 1.0))).eval()
    meta = random_meta(model.config, SIZE)
    built: list[tuple[float, ...]] = []

    def fake_ort(model, meta, *, widths, **kw):  # type: ignore[no-untyped-def]
        built.append(tuple(widths))
        return {w: (lambda x: x) for w in widths}, "cpu", []

    monkeypatch.setattr(backends, "build_onnxruntime_runners", fake_ort)
    monkeypatch.setattr(backends, "time_interleaved", lambda runners, frame, repeats, block: {
        "torch": [0.010] * repeats, "onnxruntime": [0.004] * repeats})
    ms, cached = measure_cpu_backends(model, meta, cache_dir=tmp_path)
    assert not cached and built == [(0.5, 1.0)]  # narrowest and widest
    assert ms == pytest.approx({"torch": 20.0, "onnxruntime": 8.0})
    (entry,) = json.loads((tmp_path / CPU_CHOICE_FILE).read_text()).values()
    assert entry["key"]["threads"] == torch.get_num_threads()
    assert entry["key"]["input_size"] == list(SIZE)

    ms2, cached = measure_cpu_backends(model, meta, cache_dir=tmp_path)
    assert cached and ms2 == ms and len(built) == 1
    # another thread count is another machine setting: measured again
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert measure_cpu_backends(model, meta, cache_dir=tmp_path)[1] is False
    assert len(built) == 2
    # an unreadable cache file is ignored, not fatal
    (tmp_path / CPU_CHOICE_FILE).write_text("{not json")
    assert measure_cpu_backends(model, meta, cache_dir=tmp_path)[1] is False


# -- explicit backends with a missing dependency -------------------------------------------------


def test_explicit_tensorrt_without_torch_tensorrt_stops_with_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError) as info:
        load_engine(backend="tensorrt", allow_random=True, input_size=SIZE)
    message = str(info.value)
    # an ImportError, and a ValueError so one-line error reporting (CLI, node) covers it
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    assert "torch_tensorrt" in message and "pip install" in message and "Jetson" in message
    assert "\n" not in message and message.count(". ") == 0


def test_explicit_onnxruntime_without_onnxruntime_stops_with_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError) as info:
        load_engine(backend="onnxruntime", allow_random=True, input_size=SIZE)
    message = str(info.value)
    assert "onnxruntime-gpu" in message and "Jetson" in message and "\n" not in message


def test_export_without_onnxscript_names_what_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(BackendUnavailableError, match="needs onnxscript.*pip install onnx"):
        onnx_backend.export_onnx(torch.nn.Identity(), torch.zeros(1), tmp_path / "x.onnx")


# -- ONNX Runtime device and providers ------------------------------------------------------------


def test_ort_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_ort_device("cpu", [CPU]) == ("cpu", 0)
    assert resolve_ort_device("auto", [CUDA, CPU]) == ("cpu", 0)  # provider but no GPU
    assert resolve_ort_device("cuda:1", [CUDA, CPU]) == ("cuda", 1)
    with pytest.raises(ValueError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        resolve_ort_device("cuda", [CPU])
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_ort_device("gpu0", [CUDA])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_ort_device("auto", [CUDA, CPU]) == ("cuda", 0)


def test_gpu_providers_prefer_tensorrt_with_its_own_keyed_cache(tmp_path: Path) -> None:
    providers = session_providers("cuda", 1, "fp16", [TRT, CUDA, CPU], tmp_path)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [TRT, CUDA, CPU]
    trt_options = providers[0][1]
    assert trt_options["device_id"] == 1 and trt_options["trt_fp16_enable"] is True
    assert trt_options["trt_engine_cache_enable"] is True
    assert trt_options["trt_engine_cache_path"] == str(tmp_path)
    assert providers[1] == (CUDA, {"device_id": 1})
    assert session_providers("cuda", 0, "fp32", [TRT, CUDA, CPU], tmp_path)[0][1][
        "trt_fp16_enable"] is False
    assert [p if isinstance(p, str) else p[0]
            for p in session_providers("cuda", 0, "fp32", [CUDA, CPU], None)] == [CUDA, CPU]
    assert session_providers("cpu", 0, "fp32", [TRT, CUDA, CPU], tmp_path) == [CPU]


def test_trt_provider_cache_dir_is_keyed_by_the_artifact_and_toolchain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = onnx_backend.onnx_key("cd" * 32, 0.5, SIZE, "fp16", "nearest")
    assert onnx_backend._trt_provider_dir(tmp_path, key, [CUDA, CPU], "cuda", 0, "fp16") is None
    monkeypatch.setattr(onnx_backend, "cuda_device_name", lambda i=0: "Orin sm_87")
    first = onnx_backend._trt_provider_dir(tmp_path, key, [TRT, CUDA], "cuda", 0, "fp16")
    other = onnx_backend.onnx_key("ef" * 32, 0.5, SIZE, "fp16", "nearest")
    second = onnx_backend._trt_provider_dir(tmp_path, other, [TRT, CUDA], "cuda", 0, "fp16")
    assert first is not None and first.is_dir() and first != second
    assert "Orin" in first.name and key.digest[:16] in first.name


# -- ONNX Runtime backend end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def ort_engines(tmp_path_factory: pytest.TempPathFactory, make_checkpoint):  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    root = tmp_path_factory.mktemp("ort")
    path = make_checkpoint(ModelConfig(widths=(0.5, 1.0)), SIZE)
    common = dict(device="cpu", input_size=SIZE, warmup_repeats=1)
    ort = load_engine(path, backend="onnxruntime", cache_dir=root / "engines", **common)
    ref = load_engine(path, backend="torch", **common)
    return ort, ref


@pytest.mark.slow
def test_onnxruntime_labels_match_torch_at_every_width(ort_engines) -> None:  # type: ignore
    ort, ref = ort_engines
    assert (ort.backend, ort.device, ort.widths) == ("onnxruntime", "cpu", (0.5, 1.0))
    rng = np.random.default_rng(3)
    for width in ort.widths:
        for _ in range(2):
            image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
            got, want = ort.infer(image, width), ref.infer(image, width)
            assert got.dtype == np.uint8 and got.shape == SIZE
            assert (got == want).mean() >= 0.999


@pytest.mark.slow
def test_onnxruntime_engine_serves_other_image_sizes_at_their_resolution(  # type: ignore
        ort_engines) -> None:
    ort, ref = ort_engines
    image = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    got = ort.infer(image, 0.5)
    assert got.shape == (50, 70)
    assert (got == ref.infer(image, 0.5)).mean() >= 0.999


@pytest.mark.slow
def test_onnxruntime_sessions_are_configured_deliberately(ort_engines) -> None:  # type: ignore
    import onnxruntime as ort_module

    ort, _ = ort_engines
    session = ort.runner(1.0).session
    options = session.get_session_options()
    shared = onnx_backend._shared_pool_threads == torch.get_num_threads()
    assert options.use_per_session_threads is not shared
    if not shared:  # another test sized the process-wide pool first: a pool of its own
        assert options.intra_op_num_threads == torch.get_num_threads()
        assert options.inter_op_num_threads == 1
        spinning = "1" if onnx_backend.ALLOW_SPINNING else "0"
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning
    assert options.graph_optimization_level == ort_module.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert session.get_inputs()[0].shape == [1, *SIZE, 3]
    assert [(o.name, o.type) for o in session.get_outputs()] == [("labels", "tensor(uint8)")]
    assert any("cache" in n for n in ort.notes)


def test_sessions_share_one_process_pool_of_the_first_size_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sized: list[tuple[int, int]] = []

    def set_sizes(intra: int, inter: int) -> None:
        if sized:
            raise RuntimeError("Global thread pools have already been created")
        sized.append((intra, inter))

    fake = types.SimpleNamespace(set_global_thread_pool_sizes=set_sizes)
    monkeypatch.setattr(onnx_backend, "_shared_pool_threads", None)
    assert onnx_backend._use_shared_pool(fake, 2) and sized == [(2, 1)]
    assert onnx_backend._use_shared_pool(fake, 2) and sized == [(2, 1)]  # sized once
    assert not onnx_backend._use_shared_pool(fake, 1)  # another size: a pool of its own
    monkeypatch.setattr(onnx_backend, "_shared_pool_threads", None)
    assert not onnx_backend._use_shared_pool(fake, 2)  # created elsewhere, size unknown
    assert not onnx_backend._use_shared_pool(fake, 2)
    monkeypatch.setattr(onnx_backend, "_shared_pool_threads", None)
    assert not onnx_backend._use_shared_pool(types.SimpleNamespace(), 2)  # older onnxruntime


def test_onnxruntime_fp16_on_cpu_is_refused() -> None:
    model = SlimSegNet(ModelConfig(widths=(0.5, 1.0))).eval()
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        onnx_backend.build_onnxruntime_runners(model, random_meta(model.config, SIZE),
                                               device="cpu", precision="fp16")


# -- measurement helpers -------------------------------------------------------------------------


def test_interleaved_timing_rotates_the_order_and_counts_every_run() -> None:
    calls: list[str] = []
    runners = {name: (lambda x, name=name: calls.append(name)) for name in ("a", "b", "c")}
    samples = timing.time_interleaved(runners, np.zeros(1), repeats=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(ValueError, match="repeats and block must be >= 1"):
        timing.time_interleaved(runners, np.zeros(1), repeats=0)


def test_block_timing_drops_the_run_that_follows_another_runner(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a runner's first run after the other one is slow (the neighbour's threads still spin)
    clock = types.SimpleNamespace(now=0.0, last=None)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))

    def runner(name: str):  # type: ignore[no-untyped-def]
        def run(frame: np.ndarray) -> None:
            clock.now += 0.100 if clock.last not in (None, name) else 0.001
            clock.last = name
        return run

    runners = {"a": runner("a"), "b": runner("b")}
    samples = timing.time_interleaved(runners, np.zeros(1), repeats=5, warmup=0, block=3)
    assert samples == {"a": [pytest.approx(0.001)] * 5, "b": [pytest.approx(0.001)] * 5}
    clock.last = None
    plain = timing.time_interleaved(runners, np.zeros(1), repeats=4, warmup=0)
    assert max(plain["a"] + plain["b"]) == pytest.approx(0.100)  # what block mode avoids


def test_compare_backends_reports_every_width_and_the_speed_ratio(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    cost_ms = {"torch": {0.5: 10.0, 1.0: 30.0}, "onnxruntime": {0.5: 4.0, 1.0: 20.0}}

    def fake_engine(checkpoint, *, backend, **kw):  # type: ignore[no-untyped-def]
        def runner(width: float):  # type: ignore[no-untyped-def]
            def run(frame: np.ndarray) -> None:
                clock.now += cost_ms[backend][width] / 1e3
            return run
        return types.SimpleNamespace(widths=(0.5, 1.0), device="cpu", model_path=None,
                                     runner=runner)

    monkeypatch.setattr(benchmark, "load_engine", fake_engine)
    options = benchmark.BenchOptions(input_size=(64, 64), repeats=5, threads=1)
    doc = benchmark.compare_backends(None, options=options)
    assert doc["backends"]["onnxruntime"]["widths"]["1.0"]["latency_ms_p50"] == pytest.approx(20)
    assert doc["backends"]["torch"]["widths"]["0.5"]["latency_ms_p90"] == pytest.approx(10)
    assert doc["speedup"] == {"onnxruntime": {"0.5": 2.5, "1.0": 1.5}}
    assert doc["input_size"] == [64, 64] and doc["threads"] == 1 and doc["repeats"] == 5
    assert doc["block"] == options.block
    table = benchmark.format_comparison(doc)
    assert "| 0.5 | 10.0 | 10.0 | 4.0 | 4.0 | 2.50x |" in table
    assert "| 1.0 | 30.0 | 30.0 | 20.0 | 20.0 | 1.50x |" in table
    with pytest.raises(ValueError, match="at least one backend"):
        benchmark.compare_backends(None, backends=())


# -- auto decides from the model in use, and distrusts implausible records ----------------------


def test_warm_up_profile_is_monotone_in_width() -> None:
    from slimseg_ros.runtime.engine import monotone_profile

    assert monotone_profile({0.25: 0.01, 0.5: 0.02, 0.75: 0.03, 1.0: 0.04}) == {
        0.25: 0.01, 0.5: 0.02, 0.75: 0.03, 1.0: 0.04}
    # w0.75 measured slower than w1 (noise): both get their mean, so neither looks dominated
    fixed = monotone_profile({0.25: 0.02, 0.5: 0.03, 0.75: 0.072, 1.0: 0.068})
    assert fixed[0.75] == pytest.approx(0.070) and fixed[1.0] == pytest.approx(0.070)
    values = [fixed[w] for w in sorted(fixed)]
    assert values == sorted(values)


def test_implausible_records_are_named() -> None:
    record = {"ms": {"torch": 217.9, "onnxruntime": 33.7}, "loadavg": [5.2, 5.0, 4.8]}
    assert backends.implausible_record(record, "onnxruntime", 30.0, 5.0, 2) is None
    why = backends.implausible_record(record, "onnxruntime", 12.0, 5.0, 2)
    assert why and "33.7 ms" in why and "12.0 ms" in why
    why = backends.implausible_record(record, "onnxruntime", 30.0, 1.1, 2)
    assert why and "load average 5.2" in why
    quiet = {"ms": {"torch": 70.0, "onnxruntime": 25.0}, "loadavg": [0.4, 0.5, 0.5]}
    assert backends.implausible_record(quiet, "onnxruntime", 26.0, 0.1, 2) is None


def _fake_cpu_auto(monkeypatch: pytest.MonkeyPatch, winners: list[str]) -> list[dict]:
    """``auto`` on a CPU whose measurements say ``winners`` in turn; the calls are returned."""
    calls: list[dict] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def measure(model, meta, **kw):  # type: ignore[no-untyped-def]
        calls.append({"size": tuple(meta.input_size), "config": model.config, **kw})
        fast = winners[min(len(calls), len(winners)) - 1]
        return {"torch": 50.0, "onnxruntime": 50.0, fast: 10.0}, False

    monkeypatch.setattr(backends, "measure_cpu_backends", measure)
    return calls


def test_auto_measures_the_model_and_input_size_in_use(
        monkeypatch: pytest.MonkeyPatch, make_checkpoint, tmp_path: Path) -> None:
    calls = _fake_cpu_auto(monkeypatch, ["torch"])
    checkpoint = make_checkpoint(input_size=(64, 96))
    engine = load_engine(checkpoint, backend="auto", input_size=(48, 80), cache_dir=tmp_path,
                         warmup_repeats=1)
    assert engine.backend == "torch"
    (call,) = calls
    assert call["size"] == (48, 80) and call["model_path"] == str(checkpoint)
    assert not call["force"]


def test_auto_measures_again_when_its_record_is_implausible(
        monkeypatch: pytest.MonkeyPatch, make_checkpoint, tmp_path: Path) -> None:
    calls = _fake_cpu_auto(monkeypatch, ["onnxruntime", "torch"])
    # the record says onnxruntime, at a time the engine is far from now
    monkeypatch.setattr(backends, "cpu_record", lambda *a, **k: {
        "ms": {"torch": 500.0, "onnxruntime": 400.0}, "loadavg": [0.1, 0.1, 0.1],
        "measured_at": "2026-01-01T00:00:00Z"})
    import slimseg_ros.runtime.loader as loader

    monkeypatch.setattr(loader, "cpu_record", backends.cpu_record)
    notes: list[str] = []
    engine = load_engine(make_checkpoint(input_size=(64, 96)), backend="auto",
                         cache_dir=tmp_path, warmup_repeats=1, log=notes.append)
    assert [c["force"] for c in calls] == [False, True]
    assert engine.backend == "torch"  # the new measurement decided
    assert any("implausible" in n and "onnxruntime was recorded at 400.0 ms" in n
               for n in notes), notes
