"""freeze(width): equal logits, plain modules only, torch.export at a static size."""

from __future__ import annotations

import pytest
import torch
from model_utils import randomise_bn
from torch import nn

from slimseg_ros.model import (
    ConvAct, ModelConfig, SegmentationPipeline, SlimConv, SlimSegNet, build_static, count_flops,
    count_params,
)


WIDTHS = (0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def model() -> SlimSegNet:
    torch.manual_seed(0)
    net = SlimSegNet(ModelConfig(num_classes=6)).eval()
    randomise_bn(net)
    return net


@pytest.mark.parametrize("width", WIDTHS)
def test_frozen_logits_equal_slimmable_forward(model: SlimSegNet, width: float) -> None:
    x = torch.randn(1, 3, 72, 96)
    with torch.no_grad(), model.using_width(width):
        expected = model(x)
    frozen = model.freeze(width)
    with torch.no_grad():
        got = frozen(x)
    assert (got - expected).abs().max().item() <= 1e-4
    assert not any(isinstance(m, (SlimConv, nn.BatchNorm2d)) for m in frozen.modules())
    assert all(p.is_contiguous() for p in frozen.parameters())


@pytest.mark.parametrize("width", WIDTHS)
def test_frozen_width_passes_torch_export(model: SlimSegNet, width: float) -> None:
    frozen = model.freeze(width)
    x = torch.randn(1, 3, 64, 80)
    program = torch.export.export(frozen, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), frozen(x))


def test_pipeline_exports_and_matches_manual_postprocessing(model: SlimSegNet) -> None:
    frozen = model.freeze(0.5)
    pipe = SegmentationPipeline(frozen, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval()
    image = torch.randint(0, 256, (1, 50, 70, 3), dtype=torch.uint8)
    with torch.no_grad():
        labels = pipe(image)
        x = (image.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        small = frozen(x).argmax(1)[0]
    assert labels.shape == (50, 70) and labels.dtype == torch.uint8
    expected = torch.nn.functional.interpolate(small[None, None].float(), size=(50, 70),
                                               mode="nearest")[0, 0].to(torch.uint8)
    assert torch.equal(labels, expected)
    program = torch.export.export(pipe, (image,))
    assert torch.equal(program.module()(image), labels)


def test_set_width_rejects_unknown_width_and_names_valid_ones(model: SlimSegNet) -> None:
    with pytest.raises(ValueError, match=r"0\.3 .*0\.25, 0\.5, 0\.75, 1"):
        model.set_width(0.3)
    with pytest.raises(ValueError):
        model.freeze(2.0)
    assert model.width == 1.0


def test_using_width_restores_previous_width(model: SlimSegNet) -> None:
    model.set_width(0.75)
    with model.using_width(0.25):
        assert model.width == 0.25
    assert model.width == 0.75
    model.set_width(1.0)


@pytest.mark.parametrize("width", WIDTHS)
def test_independent_static_network_has_the_frozen_shapes(model: SlimSegNet, width: float) -> None:
    static = build_static(model.config, width)
    frozen = model.freeze(width)
    assert [p.shape for p in static.parameters()] == [p.shape for p in frozen.parameters()]
    assert all(isinstance(m, ConvAct)
               for m in static.modules() if isinstance(m, (ConvAct, SlimConv)))


def test_flops_and_params_grow_with_width(model: SlimSegNet) -> None:
    flops = [count_flops(model.freeze(w), (64, 64)) for w in WIDTHS]
    params = [count_params(model.freeze(w)) for w in WIDTHS]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert params == sorted(params) and len(set(params)) == len(params)
    assert flops[0] < 0.2 * flops[-1]
