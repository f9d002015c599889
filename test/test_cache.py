"""Engine cache: keys, manifest, atomic writes, and every way an artifact can be unusable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from slimseg_ros.model.checkpoint import file_sha256, random_meta, save_checkpoint
from slimseg_ros.model.config import ModelConfig
from slimseg_ros.model.slimseg import SlimSegNet
from slimseg_ros.runtime.cache import (
    MANIFEST_NAME,
    ArtifactKey,
    EngineCache,
    default_cache_dir,
    model_fingerprint,
)


def make_key(**changes: object) -> ArtifactKey:
    fields: dict[str, object] = dict(
        fmt="onnx", model_sha256="ab" * 32, width=0.5, input_size=(64, 96), precision="fp32",
        upsample="nearest", toolchain={"torch": "2.13.0", "onnx": "1.23.2"},
    )
    fields.update(changes)
    return ArtifactKey(**fields)  # type: ignore[arg-type]


class Recorder:
    """A build that writes known bytes and a load that returns what it read, both counted."""

    def __init__(self, payload: bytes = b"engine-v1") -> None:
        self.payload = payload
        self.builds = 0
        self.loaded: list[bytes] = []

    def build(self, path: Path) -> None:
        self.builds += 1
        path.write_bytes(self.payload)

    def load(self, path: Path) -> bytes:
        data = path.read_bytes()
        self.loaded.append(data)
        return data


def test_slot_names_what_the_artifact_computes_and_digest_covers_the_toolchain() -> None:
    key = make_key()
    assert key.slot == f"onnx/{'ab' * 8}/w0.5_64x96_fp32_nearest.onnx"
    other = make_key(toolchain={"torch": "2.12.0", "onnx": "1.23.2"})
    assert other.slot == key.slot
    assert other.digest != key.digest
    assert make_key(width=1.0).slot != key.slot
    assert make_key(precision="fp16").slot != key.slot
    assert make_key(input_size=(96, 64)).slot != key.slot
    assert make_key(fmt="tensorrt").slot.endswith(".ep")
    assert make_key().digest == key.digest  # stable


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        make_key(fmt="plan")


def test_miss_builds_and_records_then_hit_loads_without_building(tmp_path: Path) -> None:
    cache, rec, key = EngineCache(tmp_path), Recorder(), make_key()
    value, outcome = cache.get_or_build(key, rec.build, rec.load)
    assert (value, outcome.status, rec.builds) == (b"engine-v1", "built", 1)
    record = json.loads((tmp_path / MANIFEST_NAME).read_text())["entries"][key.slot]
    assert record["sha256"] == file_sha256(tmp_path / key.slot)
    assert record["size_bytes"] == len(b"engine-v1")
    assert record["key"] == key.to_dict()

    value, outcome = EngineCache(tmp_path).get_or_build(key, rec.build, rec.load)
    assert (value, outcome.status, outcome.build_s, rec.builds) == (b"engine-v1", "hit", 0.0, 1)


def test_corrupt_artifact_is_rebuilt_with_a_warning_and_never_loaded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.get_or_build(key, Recorder().build, Recorder().load)
    (tmp_path / key.slot).write_bytes(b"engine-v1-truncated")
    rec = Recorder(b"engine-v2")
    with caplog.at_level(logging.WARNING):
        value, outcome = cache.get_or_build(key, rec.build, rec.load)
    assert rec.loaded == [b"engine-v2"]  # the corrupt bytes never reached load
    assert (value, outcome.status) == (b"engine-v2", "rebuilt")
    assert "sha256" in outcome.reason
    assert any("rebuilding" in r.message and key.slot in r.message for r in caplog.records)


def test_toolchain_change_is_rebuilt_with_a_warning_naming_the_change(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = EngineCache(tmp_path)
    cache.get_or_build(make_key(), Recorder().build, Recorder().load)
    newer = make_key(toolchain={"torch": "2.14.0", "onnx": "1.23.2"})
    rec = Recorder(b"engine-new-torch")
    with caplog.at_level(logging.WARNING):
        value, outcome = cache.get_or_build(newer, rec.build, rec.load)
    assert rec.loaded == [b"engine-new-torch"]
    assert outcome.status == "rebuilt"
    assert "torch 2.13.0 -> 2.14.0" in outcome.reason
    assert any("torch 2.13.0 -> 2.14.0" in r.message for r in caplog.records)
    # and the old toolchain now misses in turn: one slot, one valid artifact
    assert EngineCache(tmp_path).verify(make_key())[0] is None


def test_file_without_a_manifest_record_is_not_trusted(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.get_or_build(key, Recorder().build, Recorder().load)
    (tmp_path / MANIFEST_NAME).unlink()
    path, why = cache.verify(key)
    assert path is None and "no manifest record" in why
    rec = Recorder(b"fresh")
    assert cache.get_or_build(key, rec.build, rec.load)[1].status == "rebuilt"
    assert rec.loaded == [b"fresh"]


def test_unreadable_manifest_counts_as_empty_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.get_or_build(key, Recorder().build, Recorder().load)
    (tmp_path / MANIFEST_NAME).write_text('{"format": 1, "entries": {"trunc')
    with caplog.at_level(logging.WARNING):
        assert cache.read_manifest() == {}
    assert any("corrupt" in r.message for r in caplog.records)
    rec = Recorder(b"again")
    _, outcome = cache.get_or_build(key, rec.build, rec.load)
    assert outcome.status == "rebuilt" and rec.builds == 1
    assert key.slot in json.loads((tmp_path / MANIFEST_NAME).read_text())["entries"]


def test_artifact_that_fails_to_load_is_rebuilt(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.get_or_build(key, Recorder(b"unloadable").build, lambda p: p.read_bytes())

    def picky_load(path: Path) -> bytes:
        data = path.read_bytes()
        if data == b"unloadable":
            raise RuntimeError("bad engine")
        return data

    value, outcome = cache.get_or_build(key, Recorder(b"good").build, picky_load)
    assert value == b"good" and outcome.status == "rebuilt"
    assert "failed to load" in outcome.reason and "bad engine" in outcome.reason


def test_failed_build_leaves_no_file_no_temp_and_an_unchanged_manifest(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.get_or_build(make_key(width=1.0), Recorder().build, Recorder().load)
    before = (tmp_path / MANIFEST_NAME).read_text()

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("compiler crashed")

    key = make_key()
    with pytest.raises(RuntimeError, match="compiler crashed"):
        cache.get_or_build(key, broken, Recorder().load)
    assert not (tmp_path / key.slot).exists()
    assert (tmp_path / MANIFEST_NAME).read_text() == before
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")
                 and p.name != ".manifest.lock"]
    assert leftovers == []


def test_build_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="produced no file"):
        EngineCache(tmp_path).get_or_build(make_key(), lambda p: None, Recorder().load)


def test_force_rebuilds_a_valid_artifact(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.get_or_build(key, Recorder().build, Recorder().load)
    rec = Recorder(b"forced")
    value, outcome = cache.get_or_build(key, rec.build, rec.load, force=True)
    assert (value, outcome.status, rec.builds) == (b"forced", "rebuilt", 1)


def test_widths_and_sizes_live_side_by_side(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    keys = [make_key(width=w) for w in (0.25, 0.5)] + [make_key(input_size=(32, 32))]
    for i, key in enumerate(keys):
        cache.get_or_build(key, Recorder(f"e{i}".encode()).build, Recorder().load)
    for i, key in enumerate(keys):
        assert cache.get_or_build(key, Recorder().build, Recorder().load)[0] == f"e{i}".encode()


def test_model_fingerprint_is_the_file_hash_or_a_weight_hash(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = ModelConfig(widths=(0.5, 1.0))
    model = SlimSegNet(config).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, random_meta(config))
    assert model_fingerprint(model, path) == file_sha256(path)
    same = SlimSegNet(config).eval()
    same.load_state_dict(model.state_dict())
    assert model_fingerprint(same, None) == model_fingerprint(model, None)
    with torch.no_grad():
        next(same.parameters()).add_(1e-3)
    assert model_fingerprint(same, None) != model_fingerprint(model, None)


def test_default_cache_dir_is_persistent_and_overridable(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("SLIMSEG_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "slimseg_ros"
    monkeypatch.setenv("SLIMSEG_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
