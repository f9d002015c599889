"""`slimseg bench`, end to end on the real backends at a small input size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slimseg_ros.cli.main import main

pytestmark = pytest.mark.slow  # every width timed on two backends

WIDTHS = ["0.25", "0.5", "0.75", "1.0"]
SMALL = ["--input-size", "64x96", "--repeats", "3", "--threads", "1", "--block", "2"]


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "bench.json"
    assert main(["bench", *SMALL, "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bench_measures_every_width_and_its_references(tmp_path: Path, backend: str,
                                                       capsys: pytest.CaptureFixture) -> None:
    doc = _run(tmp_path, "--backend", backend, "--engine-cache-dir", str(tmp_path / "cache"))
    assert doc["backend"] == backend and doc["block"] == 2 and doc["input_size"] == [64, 96]
    assert list(doc["widths"]) == WIDTHS
    for ref in ("independent_static", "eager_slimmable"):
        assert list(doc["references"][ref]) == WIDTHS
    flops = [doc["widths"][w]["gflops"] for w in WIDTHS]
    assert flops == sorted(flops) and flops[0] > 0  # a wider network costs more work
    for row in doc["widths"].values():
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p90"]
    assert set(doc["summary"]["frozen_over_static"]) == set(WIDTHS)
    table = capsys.readouterr().out
    assert f"backend {backend} on cpu" in table and "(turns of 2)" in table
    assert all(f"| {w} |" in table for w in WIDTHS)


def test_bench_compare_times_backends_against_each_other(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    doc = _run(tmp_path, "--compare", "torch,onnxruntime",
               "--engine-cache-dir", str(tmp_path / "cache"))
    assert list(doc["backends"]) == ["torch", "onnxruntime"] and doc["block"] == 2
    for name in doc["backends"]:
        assert list(doc["backends"][name]["widths"]) == WIDTHS
    ratios = doc["speedup"]["onnxruntime"]
    assert list(ratios) == WIDTHS
    for w in WIDTHS:  # the ratio is the reference's p50 over the other's, from the same run
        expected = (doc["backends"]["torch"]["widths"][w]["latency_ms_p50"]
                    / doc["backends"]["onnxruntime"]["widths"][w]["latency_ms_p50"])
        assert ratios[w] == pytest.approx(expected, rel=0.05)  # p50s are rounded
    assert "torch/onnxruntime" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--compare", "torch"], "two or more different backends"),
    (["--compare", "torch,torch"], "two or more different backends"),
    (["--block", "0"], "--block must be at least 1"),
    (["--repeats", "2"], "--repeats must be at least 3"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
])
def test_bad_bench_arguments_are_one_line_errors(args: list[str], message: str,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--input-size", "64x96", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bench_on_cuda_times_engine_and_references_on_the_gpu(tmp_path: Path,
                                                              precision: str) -> None:
    doc = _run(tmp_path, "--device", "cuda", "--precision", precision)
    assert doc["device"].startswith("cuda") and doc["precision"] == precision
    assert list(doc["references"]["independent_static"]) == WIDTHS
    # the references run where the engine runs: a static network is not 10x slower than the
    # frozen width that computes the same thing (a CPU reference would be)
    for w in WIDTHS:
        ratio = doc["summary"]["frozen_over_static"][w]
        assert 0.1 < ratio < 10, (w, ratio)
