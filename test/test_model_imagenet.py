"""Mapping torchvision's ImageNet MobileNetV2 state dict onto the slimmable encoder.

The names and shapes come from torchvision 0.29.1 itself (``fixtures/torchvision_mobilenet_v2_
names_shapes.json``, written once from ``models.mobilenet_v2(weights=None).state_dict()``), so
the mapping is tested against the real layout without torchvision or a download here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slimseg_ros.model import ModelConfig, SlimSegNet
from slimseg_ros.model.imagenet import load_imagenet_encoder, torchvision_mobilenet_v2_pairs
from slimseg_ros.train.config import load_train_config

LAYOUT = json.loads((Path(__file__).parent / "fixtures" /
                     "torchvision_mobilenet_v2_names_shapes.json").read_text())["tensors"]


def _imagenet_like(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in LAYOUT.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g)
    return state


def test_every_mapped_name_exists_in_torchvision_with_the_encoders_shape() -> None:
    model = SlimSegNet(ModelConfig())
    pairs = torchvision_mobilenet_v2_pairs()
    assert len(pairs) == 51 and all(conv in LAYOUT for conv, _ in pairs)
    assert all(f"{bn}.running_var" in LAYOUT for _, bn in pairs)
    assert LAYOUT["features.0.0.weight"] == list(model.net.stem.weight.shape)
    assert LAYOUT["features.17.conv.2.weight"] == [320, 960, 1, 1]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_imagenet_weights_land_in_the_encoder_and_narrow_bns_take_their_slice(
        tmp_path: Path, suffix: str) -> None:
    state = _imagenet_like()
    path = tmp_path / f"mobilenet_v2{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    model = SlimSegNet(ModelConfig())
    head_before = model.net.head.classifier.weight.clone()
    assert load_imagenet_encoder(model, path) == 51
    stem = model.net.stem
    assert torch.equal(stem.weight, state["features.0.0.weight"])
    assert torch.equal(stem.bn[3].running_var, state["features.0.1.running_var"])
    assert torch.equal(stem.bn[0].weight, state["features.0.1.weight"][:stem.out_channels[0]])
    project = model.net.stages[-1][0].layers[2]  # features.17's 960 -> 320 projection
    assert torch.equal(project.weight, state["features.17.conv.2.weight"])
    assert torch.equal(project.bn[3].bias, state["features.17.conv.3.bias"])
    assert torch.equal(model.net.head.classifier.weight, head_before)  # decoder untouched


def test_other_layouts_are_refused_in_one_sentence(tmp_path: Path) -> None:
    state = _imagenet_like()
    del state["features.5.conv.1.0.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="not a torchvision MobileNetV2 state dict: it lacks "
                                         "'features.5.conv.1.0.weight'"):
        load_imagenet_encoder(SlimSegNet(ModelConfig()), tmp_path / "partial.pth")
    wide = _imagenet_like()
    wide["features.0.0.weight"] = torch.randn(48, 3, 3, 3)  # a width-1.4 MobileNetV2
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(ValueError, match=r"features.0.0.weight has shape \[48, 3, 3, 3\]"):
        load_imagenet_encoder(SlimSegNet(ModelConfig()), tmp_path / "wide.pth")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not weights
    with pytest.raises(ValueError, match="not a readable state dict"):
        load_imagenet_encoder(SlimSegNet(ModelConfig()), tmp_path / "module.pth")
    with pytest.raises(ValueError, match="fit the mobilenetv2_lraspp encoder"):
        load_imagenet_encoder(SlimSegNet(ModelConfig(arch="resnet18_lraspp", widths=(1.0,))),
                              tmp_path / "partial.pth")


def test_float_settings_accept_exponent_notation() -> None:
    cfg = load_train_config(None, ["optim.lr=1e-3", "loss.ka_adapt_weight=5e1"])
    assert cfg.optim.lr == 0.001 and cfg.loss.ka_adapt_weight == 50.0
    with pytest.raises(ValueError, match="optim.lr must be a number, got 'fast'"):
        load_train_config(None, ["optim.lr=fast"])


def test_train_config_takes_encoder_init_but_not_with_a_checkpoint() -> None:
    assert load_train_config(None, ["encoder_init=w.pth"]).encoder_init == "w.pth"
    with pytest.raises(ValueError, match="choose one"):
        load_train_config(None, ["encoder_init=w.pth", "init_checkpoint=m.safetensors"])


@pytest.mark.slow
def test_training_starts_from_the_imagenet_encoder(tmp_path: Path) -> None:
    from slimseg_ros.model import load_checkpoint
    from slimseg_ros.train.loop import train

    torch.save(_imagenet_like(), tmp_path / "mobilenet_v2.pth")
    cfg = load_train_config(None, [
        "model.num_classes=4", "model.head_channels=32", "data.dataset=synthetic",
        "data.crop_size=[64,64]", "data.batch_size=2", "data.workers=0", "data.val_size=[64,64]",
        "data.options={n: 4, size: 64}", "steps=1", "val_every=0", "val_images=1", "threads=1",
        "optim.lr=1e-9", f"encoder_init={tmp_path / 'mobilenet_v2.pth'}",
        f"out={tmp_path / 'run'}"])
    result = train(cfg, progress=False)
    model, meta = load_checkpoint(result.last_checkpoint)
    assert meta.training["encoder_init"].endswith("mobilenet_v2.pth")
    stem = _imagenet_like()["features.0.0.weight"]
    assert torch.allclose(model.net.stem.weight, stem, atol=1e-4)  # one step at lr 1e-9
