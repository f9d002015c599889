"""Checkpoint round trip and one clear error per kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from slimseg_ros.model import (
    CheckpointError, ModelConfig, SlimSegNet, load_checkpoint, read_metadata, save_checkpoint,
)
from slimseg_ros.model.checkpoint import random_meta

CONFIG = ModelConfig(num_classes=4, widths=(0.5, 1.0), head_channels=32)


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, SlimSegNet]:
    torch.manual_seed(1)
    model = SlimSegNet(CONFIG)
    meta = random_meta(CONFIG, input_size=(48, 64)).replace(
        training={"steps": 3, "val": {"1": 0.5}})
    return save_checkpoint(tmp_path / "m.safetensors", model, meta), model


def test_round_trip_restores_weights_and_metadata(saved: tuple[Path, SlimSegNet]) -> None:
    path, model = saved
    loaded, meta = load_checkpoint(path)
    assert meta.config == CONFIG and meta.widths == (0.5, 1.0)
    assert meta.input_size == (48, 64) and meta.training["steps"] == 3
    assert len(meta.class_names) == 4 and len(meta.palette) == 4
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert read_metadata(path) == meta
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left nothing behind


def _rewrite(path: Path, out: Path, *, drop: str | None = None, reshape: str | None = None,
             meta_patch: dict | None = None, metadata: dict | None = None) -> Path:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        md = dict(fh.metadata())
    if drop:
        del tensors[drop]
    if reshape:
        tensors[reshape] = torch.zeros(3, 3)
    if meta_patch:
        doc = json.loads(md["slimseg"])
        doc["model"].update(meta_patch)
        md["slimseg"] = json.dumps(doc)
    save_file(tensors, str(out), metadata=md if metadata is None else metadata)
    return out


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"PK\x03\x04 this is a zip, maybe a pickle")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(bad)


def test_truncated_file(saved: tuple[Path, SlimSegNet], tmp_path: Path) -> None:
    path, _ = saved
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_checkpoint(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_missing_tensor(saved: tuple[Path, SlimSegNet], tmp_path: Path) -> None:
    path, _ = saved
    bad = _rewrite(path, tmp_path / "b.safetensors", drop="net.stem.weight")
    with pytest.raises(CheckpointError, match="missing tensor 'net.stem.weight'"):
        load_checkpoint(bad)


def test_wrong_shape(saved: tuple[Path, SlimSegNet], tmp_path: Path) -> None:
    path, _ = saved
    bad = _rewrite(path, tmp_path / "b.safetensors", reshape="net.head.classifier.weight")
    with pytest.raises(CheckpointError, match=r"has shape \[3, 3\], the architecture needs"):
        load_checkpoint(bad)


def test_unknown_architecture(saved: tuple[Path, SlimSegNet], tmp_path: Path) -> None:
    path, _ = saved
    bad = _rewrite(path, tmp_path / "b.safetensors", meta_patch={"arch": "resnet9000"})
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet9000'"):
        load_checkpoint(bad)


def test_safetensors_without_slimseg_metadata(saved: tuple[Path, SlimSegNet],
                                              tmp_path: Path) -> None:
    path, _ = saved
    bad = _rewrite(path, tmp_path / "b.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="without slimseg metadata"):
        load_checkpoint(bad)


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert "\n" not in str(info.value)
