"""Slimmable ops against plain convolutions with sliced weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model_utils import randomise_bn

from slimseg_ros.model import ModelConfig, SlimConv, SlimSegNet, make_divisible


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_slim_conv_equals_plain_conv_on_sliced_weights(idx: int) -> None:
    conv = SlimConv((8, 16, 24), (16, 24, 32), 3, stride=2, bn=False, act=None)
    torch.nn.init.normal_(conv.bias)
    conv.idx = idx
    c_in, c_out = conv.in_channels[idx], conv.out_channels[idx]
    x = torch.randn(2, c_in, 13, 17)
    expected = F.conv2d(x, conv.weight[:c_out, :c_in], conv.bias[:c_out], stride=2, padding=1)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("idx", [0, 1])
def test_depthwise_slim_conv_slices_groups(idx: int) -> None:
    conv = SlimConv((8, 16), (8, 16), 3, dilation=2, depthwise=True, bn=False, act=None)
    conv.idx = idx
    c = conv.out_channels[idx]
    x = torch.randn(1, c, 11, 9)
    expected = F.conv2d(x, conv.weight[:c], conv.bias[:c], padding=2, dilation=2, groups=c)
    out = conv(x)
    assert out.shape == (1, c, 11, 9)
    torch.testing.assert_close(out, expected)


def test_switchable_bn_keeps_private_statistics_per_width() -> None:
    conv = SlimConv((3, 3), (8, 16), 1, act=None).train()
    conv.idx = 0
    conv(torch.randn(4, 3, 5, 5) + 3.0)
    assert not torch.allclose(conv.bn[0].running_mean, torch.zeros(8))
    # the other width's BN saw nothing
    assert torch.equal(conv.bn[1].running_mean, torch.zeros(16))
    assert int(conv.bn[1].num_batches_tracked) == 0


def test_fold_matches_conv_then_bn_in_eval_mode() -> None:
    conv = SlimConv((4, 8), (8, 16), 3, act="relu6").eval()
    randomise_bn(conv)
    for idx in (0, 1):
        conv.idx = idx
        x = torch.randn(1, conv.in_channels[idx], 10, 10)
        torch.testing.assert_close(conv.fold(idx)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_state_dict_keys_do_not_depend_on_width() -> None:
    model = SlimSegNet(ModelConfig(num_classes=5))
    keys = set(model.state_dict())
    model.set_width(0.25)
    assert set(model.state_dict()) == keys


def test_make_divisible_rule() -> None:
    assert make_divisible(16 * 0.25) == 8  # never below the divisor
    assert make_divisible(144 * 0.25) == 40  # 36 rounds to the nearest multiple of 8
    assert make_divisible(32 * 0.75) == 24
    assert make_divisible(10, 8) == 16  # 8 would lose more than 10 %
    assert all(make_divisible(c * w) % 8 == 0 for c in (16, 24, 96, 160) for w in (0.25, 0.5))


def test_channel_counts_shrink_with_width_and_classifier_is_fixed() -> None:
    model = SlimSegNet(ModelConfig(num_classes=7))
    stem = model.net.stem
    assert stem.in_channels == (3, 3, 3, 3)
    assert list(stem.out_channels) == sorted(stem.out_channels)
    cls = model.net.head.classifier
    assert cls.out_channels == (7, 7, 7, 7)
    for w in model.widths:
        model.set_width(w)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7, 8, 8)
