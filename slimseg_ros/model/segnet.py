"""The segmentation architecture, described once and built from interchangeable conv units.

``build_segnet`` describes a MobileNetV2 encoder (output stride 16 through a dilated last stage)
and an LR-ASPP style decoder with a 1/8 skip and a light refinement. It takes a *unit factory*:
with :class:`~slimseg_ros.model.ops.SlimConv` units it builds the slimmable network; with
:class:`~slimseg_ros.model.ops.ConvAct` units at one width it builds an independent static
network with exactly the channel counts of that width. Containers here hold no weights of their
own, so a width can be frozen by swapping every unit for its folded form.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .ops import ConvAct, SlimConv, make_divisible

__all__ = ["SegNet", "InvertedResidual", "LRASPPHead", "build_segnet", "slim_unit", "static_unit"]

# (expansion t, channels c, repeats n, stride s): MobileNetV2's stages without the 1280 tail.
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LOW_LEVEL_STRIDE = 8  # the decoder's skip connection comes from the last stride-8 stage

# A unit factory: (in_channels per width, out_channels per width, kernel, **options) -> module.
UnitFactory = Callable[..., nn.Module]


def slim_unit(in_ch: Sequence[int], out_ch: Sequence[int], k: int, **kw: object) -> nn.Module:
    return SlimConv(in_ch, out_ch, k, **kw)


def static_unit(in_ch: Sequence[int], out_ch: Sequence[int], k: int, **kw: object) -> nn.Module:
    if len(in_ch) != 1:
        raise ValueError("a static network is built for exactly one width")
    kw.pop("bn", None)  # the deployable form has BN folded into the conv bias
    return ConvAct.build(in_ch[0], out_ch[0], k, **kw)  # type: ignore[arg-type]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand (1x1) -> depthwise (3x3) -> project (1x1), identity if shapes allow."""

    def __init__(self, layers: Sequence[nn.Module], residual: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class LRASPPHead(nn.Module):
    """LR-ASPP decoder with a concatenated 1/8 skip and a depthwise-separable refinement.

    high (1/16) -> 1x1 conv, gated by a global-pool branch -> bilinear x2 -> concat with a 1x1
    projection of the 1/8 skip -> depthwise 3x3 + pointwise -> classifier. Logits at 1/8.
    """

    def __init__(
        self,
        high_proj: nn.Module,
        gate: nn.Module,
        low_proj: nn.Module,
        refine: nn.Module,
        classifier: nn.Module,
    ) -> None:
        super().__init__()
        self.high_proj = high_proj
        self.gate = gate
        self.low_proj = low_proj
        self.refine = refine
        self.classifier = classifier

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.high_proj(high) * self.gate(high.mean((2, 3), keepdim=True))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([x, self.low_proj(low)], dim=1)
        return self.classifier(self.refine(x))


class SegNet(nn.Module):
    """Encoder stages + decoder head: normalised float image (N,3,H,W) -> logits (N,K,H/8,W/8)."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], low_index: int,
                 head: LRASPPHead) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.low_index = low_index
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        low = x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.low_index:
                low = x
        return self.head(low, x)


def build_segnet(config: ModelConfig, widths: Sequence[float], unit: UnitFactory) -> SegNet:
    """Build the architecture of ``config`` for ``widths`` (all of them, or one) from ``unit``."""

    def ch(c: int) -> tuple[int, ...]:
        return tuple(make_divisible(c * w, config.channel_divisor) for w in widths)

    def cat(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        # concat widths are the sum of the scaled parts, never a rescaled sum (rounding differs)
        return tuple(x + y for x, y in zip(a, b))

    rgb = (3,) * len(widths)
    stem = unit(rgb, ch(STEM_CHANNELS), 3, stride=2, act="relu6")
    in_full, stride, dilation = STEM_CHANNELS, 2, 1
    stages: list[nn.Module] = []
    low_index, low_channels = -1, ch(STEM_CHANNELS)
    for t, c, n, s in MOBILENETV2_STAGES:
        blocks: list[nn.Module] = []
        for i in range(n):
            block_stride = s if i == 0 else 1
            block_dilation = dilation
            if block_stride > 1 and stride * block_stride > config.output_stride:
                # keep the resolution and widen the receptive field instead (DeepLab)
                dilation *= block_stride
                block_stride = 1
            elif block_stride > 1:
                stride *= block_stride
            layers: list[nn.Module] = []
            hidden = ch(in_full * t)
            if t != 1:
                layers.append(unit(ch(in_full), hidden, 1, act="relu6"))
            layers.append(unit(hidden, hidden, 3, stride=block_stride, dilation=block_dilation,
                               depthwise=True, act="relu6"))
            layers.append(unit(hidden, ch(c), 1, act=None))
            blocks.append(InvertedResidual(layers, residual=block_stride == 1 and in_full == c))
            in_full = c
        stages.append(nn.Sequential(*blocks))
        if stride == LOW_LEVEL_STRIDE:
            low_index, low_channels = len(stages) - 1, ch(c)
    if low_index < 0:
        raise AssertionError("the encoder has no stride-8 stage for the decoder skip")

    high = ch(in_full)
    head_ch = ch(config.head_channels)
    low_ch = ch(config.head_channels // 4)
    fused = cat(head_ch, low_ch)
    classes = (config.num_classes,) * len(widths)
    head = LRASPPHead(
        high_proj=unit(high, head_ch, 1, act="relu"),
        gate=unit(high, head_ch, 1, bn=False, act="sigmoid"),
        low_proj=unit(low_channels, low_ch, 1, act="relu"),
        refine=nn.Sequential(
            unit(fused, fused, 3, depthwise=True, act="relu"),
            unit(fused, head_ch, 1, act="relu"),
        ),
        classifier=unit(head_ch, classes, 1, bn=False, act=None),
    )
    return SegNet(stem, stages, low_index, head)
