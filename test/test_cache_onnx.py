"""The engine cache through the ONNX Runtime backend: miss, hit, corrupt file, version change."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from slimseg_ros.model.checkpoint import random_meta, save_checkpoint  # noqa: E402
from slimseg_ros.model.config import ModelConfig  # noqa: E402
from slimseg_ros.model.slimseg import SlimSegNet  # noqa: E402
from slimseg_ros.runtime import onnx_backend  # noqa: E402
from slimseg_ros.runtime.cache import MANIFEST_NAME  # noqa: E402
from slimseg_ros.runtime.onnx_backend import build_onnxruntime_runners  # noqa: E402
from slimseg_ros.runtime.torch_backend import build_torch_runners  # noqa: E402

SIZE = (64, 96)
WIDTH = 0.5


@pytest.fixture()
def checkpoint(tmp_path: Path) -> tuple[SlimSegNet, object, Path]:
    torch.manual_seed(0)
    config = ModelConfig(widths=(0.5, 1.0))
    model = SlimSegNet(config).eval()
    meta = random_meta(config, SIZE)
    return model, meta, save_checkpoint(tmp_path / "model.safetensors", model, meta)


def build(model: SlimSegNet, meta: object, path: Path, cache: Path, **kw: object):
    return build_onnxruntime_runners(model, meta, device="cpu", cache_dir=cache,  # type: ignore
                                     model_path=path, widths=[WIDTH], **kw)


def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = onnx_backend.export_onnx

    def counting(module, example, path, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return real(module, example, path, *a, **k)

    monkeypatch.setattr(onnx_backend, "export_onnx", counting)
    return calls


@pytest.mark.slow
def test_miss_hit_corrupt_version_change_and_new_checkpoint(checkpoint, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    model, meta, path = checkpoint
    cache = tmp_path / "engines"
    exports = count_exports(monkeypatch)
    frame = np.random.default_rng(0).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    expected = build_torch_runners(model, meta, "cpu")[0][WIDTH](frame)  # type: ignore[arg-type]

    # miss: exported once, recorded, and correct
    runners, device, notes = build(model, meta, path, cache)
    assert device == "cpu" and len(exports) == 1
    assert np.array_equal(runners[WIDTH](frame), expected)
    assert any("w0.5: built" in n for n in notes)
    entries = json.loads((cache / MANIFEST_NAME).read_text())["entries"]
    (slot,) = entries
    assert entries[slot]["key"]["toolchain"]["opset"] == str(onnx_backend.ONNX_OPSET)

    # hit: nothing exported
    runners, _, notes = build(model, meta, path, cache)
    assert len(exports) == 1 and any("cache hit" in n for n in notes)
    assert np.array_equal(runners[WIDTH](frame), expected)

    # corrupt file: rebuilt with a warning, the damaged file never reaches ONNX Runtime
    artifact = cache / slot
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        runners, _, notes = build(model, meta, path, cache)
    assert len(exports) == 2 and any("rebuilt" in n and "sha256" in n for n in notes)
    assert any("rebuilding" in r.message for r in caplog.records)
    assert np.array_equal(runners[WIDTH](frame), expected)

    # version change of the exporter: rebuilt, and the reason names it
    real_toolchain = onnx_backend.onnx_toolchain
    monkeypatch.setattr(onnx_backend, "onnx_toolchain",
                        lambda: {**real_toolchain(), "torch": "9.9.9"})
    runners, _, notes = build(model, meta, path, cache)
    assert len(exports) == 3
    assert any("rebuilt" in n and "-> 9.9.9" in n for n in notes)
    assert np.array_equal(runners[WIDTH](frame), expected)

    # retrained checkpoint (same architecture, new weights): a new artifact, never the old one
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.0)
    save_checkpoint(path, model, meta)  # type: ignore[arg-type]
    runners, _, notes = build(model, meta, path, cache)
    assert len(exports) == 4 and any("w0.5: built" in n for n in notes)
    retrained = build_torch_runners(model, meta, "cpu")[0][WIDTH](frame)  # type: ignore[arg-type]
    assert not np.array_equal(retrained, expected)  # the old artifact would be caught
    assert np.array_equal(runners[WIDTH](frame), retrained)
    assert len(json.loads((cache / MANIFEST_NAME).read_text())["entries"]) == 2
