"""Slimmable building blocks: one full-width weight, several executable widths.

A :class:`SlimConv` holds the weight of its widest configuration and, at width index ``i``, uses
the first ``out_channels[i]`` filters over the first ``in_channels[i]`` inputs (a prefix slice, as
in Slimmable Networks). Batch normalisation is *switchable*: every width owns a private
``BatchNorm2d`` (affine and running statistics), so trained widths need no recalibration.

The width is explicit module state set through ``SlimSegNet.set_width`` (one code path, no
globals), and :meth:`SlimConv.fold` materialises one width as a plain convolution with BN folded
in.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["make_divisible", "SlimConv", "ConvAct", "ACTIVATIONS"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10 % of it.

    The rule (from the MobileNet family) is part of the checkpoint contract: a model trained with
    one divisor cannot be loaded with another, because every channel count would change.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _make_act(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; "
                         f"choose from {sorted(ACTIVATIONS)}") from None


class ConvAct(nn.Module):
    """A plain convolution (BN already folded into its bias) followed by an activation.

    This is the deployable form of :class:`SlimConv` at one width, and also what an independently
    built static network is made of, so the two compile to identical graphs.
    """

    def __init__(self, conv: nn.Conv2d, act: str | None) -> None:
        super().__init__()
        self.conv = conv
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    @classmethod
    def build(
        cls,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        depthwise: bool = False,
        act: str | None = "relu6",
    ) -> "ConvAct":
        """A freshly initialised unit with the given channel counts (the 'independent' network)."""
        padding = dilation * (kernel_size - 1) // 2
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation,
            groups=out_channels if depthwise else 1, bias=True,
        )
        return cls(conv, act)


class SlimConv(nn.Module):
    """Slimmable convolution with optional switchable BN and an activation.

    Args:
        in_channels: input channels per width (index-aligned with the model's widths).
        out_channels: output channels per width.
        kernel_size, stride, dilation: as for ``nn.Conv2d`` (padding keeps the size / stride).
        depthwise: one filter per channel; groups follow the width (``in == out`` required).
        bn: a private ``BatchNorm2d`` per width after the conv (then the conv has no bias).
        act: activation name from :data:`ACTIVATIONS`, or ``None``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        depthwise: bool = False,
        bn: bool = True,
        act: str | None = "relu6",
    ) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError("in_channels and out_channels need one entry per width")
        if depthwise and tuple(in_channels) != tuple(out_channels):
            raise ValueError("a depthwise SlimConv needs in_channels == out_channels "
                             "at every width")
        self.in_channels = tuple(int(c) for c in in_channels)
        self.out_channels = tuple(int(c) for c in out_channels)
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.padding = dilation * (kernel_size - 1) // 2
        self.depthwise = depthwise
        self.act_name = act
        in_per_group = 1 if depthwise else max(self.in_channels)
        self.weight = nn.Parameter(
            torch.empty(max(self.out_channels), in_per_group, kernel_size, kernel_size)
        )
        self.bias = None if bn else nn.Parameter(torch.zeros(max(self.out_channels)))
        self.bn = (
            nn.ModuleList(nn.BatchNorm2d(c) for c in self.out_channels) if bn else None
        )
        self.act = _make_act(act)
        self.idx = len(self.out_channels) - 1  # widest by default
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
            f"s={self.stride}, d={self.dilation}, depthwise={self.depthwise}, act={self.act_name}"
        )

    def _sliced(self, idx: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        c_out = self.out_channels[idx]
        c_in = 1 if self.depthwise else self.in_channels[idx]
        weight = self.weight[:c_out, :c_in]
        bias = None if self.bias is None else self.bias[:c_out]
        groups = c_out if self.depthwise else 1
        return weight, bias, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, groups = self._sliced(self.idx)
        y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)
        if self.bn is not None:
            y = self.bn[self.idx](y)
        return self.act(y)

    @torch.no_grad()
    def fold(self, idx: int) -> ConvAct:
        """Width ``idx`` as a plain conv with this width's BN folded into weight and bias."""
        weight, bias, groups = self._sliced(idx)
        weight = weight.detach().clone()
        bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach().clone()
        if self.bn is not None:
            bn = self.bn[idx]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = (bias - bn.running_mean) * scale + bn.bias
        conv = nn.Conv2d(
            weight.shape[1] * groups, weight.shape[0], self.kernel_size, self.stride,
            self.padding, self.dilation, groups=groups, bias=True,
        )
        conv.weight.copy_(weight.contiguous())
        conv.bias.copy_(bias)
        return ConvAct(conv, self.act_name)
