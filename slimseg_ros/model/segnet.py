"""The segmentation architectures, described once and built from interchangeable conv units.

``build_segnet`` describes an encoder (MobileNetV2, the deployable student; or ResNet-18 with a
deep stem, the stronger teacher), output stride 16 through a dilated last stage, and an LR-ASPP
style decoder with a 1/8 skip and a light refinement. It takes a *unit factory*:
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

__all__ = [
    "SegNet", "InvertedResidual", "BasicBlock", "LRASPPHead", "build_segnet", "slim_unit",
    "static_unit",
]

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
# ResNet-18's four stages (channels, stride of the first block), two basic blocks each.
RESNET18_STAGES: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (256, 2), (512, 2))
RESNET_STEM_CHANNELS = 32  # the deep stem's first two 3x3 convs (ResNet-D); then 64
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
    """MobileNetV2 block: expand (1x1) -> depthwise (3x3) -> project (1x1), identity if shapes
    allow."""

    def __init__(self, layers: Sequence[nn.Module], residual: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 units, identity or projection shortcut, ReLU after the sum."""

    def __init__(self, layers: Sequence[nn.Module], shortcut: nn.Module | None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.layers(x) + skip)


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

    def features(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The decoder's last features (1/8, before the classifier): MGD's region-level input."""
        x = self.high_proj(high) * self.gate(high.mean((2, 3), keepdim=True))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([x, self.low_proj(low)], dim=1)
        return self.refine(x)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(low, high))


class SegNet(nn.Module):
    """Encoder stages + decoder head: normalised float image (N,3,H,W) -> logits (N,K,H/8,W/8)."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], low_index: int,
                 head: LRASPPHead) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.low_index = low_index
        self.head = head

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's two inputs: (1/8 skip features, 1/16 encoder output)."""
        x = self.stem(x)
        low = x
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.low_index:
                low = x
        return low, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(*self.encode(x))


# (stem, stages, index of the 1/8 stage, its channels, the encoder's output channels)
Encoder = tuple[nn.Module, list[nn.Module], int, tuple[int, ...], tuple[int, ...]]
ChannelRule = Callable[[int], tuple[int, ...]]


class _Strides:
    """Tracks the encoder's stride; past ``output_stride`` a stride becomes dilation (DeepLab)."""

    def __init__(self, output_stride: int, stride: int) -> None:
        self.output_stride, self.stride, self.dilation = output_stride, stride, 1

    def next_block(self, stride: int) -> tuple[int, int]:
        """(stride, dilation) of the next block whose nominal stride is ``stride``."""
        dilation = self.dilation
        if stride > 1 and self.stride * stride > self.output_stride:
            # keep the resolution and widen the receptive field instead
            self.dilation *= stride
            return 1, dilation
        self.stride *= stride
        return stride, dilation


def _mobilenetv2_encoder(config: ModelConfig, ch: ChannelRule, unit: UnitFactory,
                         rgb: tuple[int, ...]) -> Encoder:
    stem = unit(rgb, ch(STEM_CHANNELS), 3, stride=2, act="relu6")
    in_full, strides = STEM_CHANNELS, _Strides(config.output_stride, 2)
    stages: list[nn.Module] = []
    low_index, low_channels = -1, ch(STEM_CHANNELS)
    for t, c, n, s in MOBILENETV2_STAGES:
        blocks: list[nn.Module] = []
        for i in range(n):
            block_stride, block_dilation = strides.next_block(s if i == 0 else 1)
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
        if strides.stride == LOW_LEVEL_STRIDE:
            low_index, low_channels = len(stages) - 1, ch(c)
    return stem, stages, low_index, low_channels, ch(in_full)


def _resnet18_encoder(config: ModelConfig, ch: ChannelRule, unit: UnitFactory,
                      rgb: tuple[int, ...]) -> Encoder:
    # deep stem (three 3x3 convs instead of one 7x7): trains better from scratch
    stem = nn.Sequential(
        unit(rgb, ch(RESNET_STEM_CHANNELS), 3, stride=2, act="relu"),
        unit(ch(RESNET_STEM_CHANNELS), ch(RESNET_STEM_CHANNELS), 3, act="relu"),
        unit(ch(RESNET_STEM_CHANNELS), ch(RESNET18_STAGES[0][0]), 3, act="relu"),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    in_full, strides = RESNET18_STAGES[0][0], _Strides(config.output_stride, 4)
    stages: list[nn.Module] = []
    low_index, low_channels = -1, ch(in_full)
    for c, s in RESNET18_STAGES:
        blocks: list[nn.Module] = []
        for i in range(2):
            block_stride, dilation = strides.next_block(s if i == 0 else 1)
            layers = [
                unit(ch(in_full), ch(c), 3, stride=block_stride, dilation=dilation, act="relu"),
                unit(ch(c), ch(c), 3, dilation=dilation, act=None),
            ]
            shortcut = None
            if block_stride != 1 or in_full != c:
                shortcut = unit(ch(in_full), ch(c), 1, stride=block_stride, act=None)
            blocks.append(BasicBlock(layers, shortcut))
            in_full = c
        stages.append(nn.Sequential(*blocks))
        if strides.stride == LOW_LEVEL_STRIDE and low_index < 0:
            low_index, low_channels = len(stages) - 1, ch(c)
    return stem, stages, low_index, low_channels, ch(in_full)


_ENCODERS: dict[str, Callable[..., Encoder]] = {
    "mobilenetv2_lraspp": _mobilenetv2_encoder,
    "resnet18_lraspp": _resnet18_encoder,
}


def build_segnet(config: ModelConfig, widths: Sequence[float], unit: UnitFactory) -> SegNet:
    """Build the architecture of ``config`` for ``widths`` (all of them, or one) from ``unit``."""

    def ch(c: int) -> tuple[int, ...]:
        return tuple(make_divisible(c * w, config.channel_divisor) for w in widths)

    def cat(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        # concat widths are the sum of the scaled parts, never a rescaled sum (rounding differs)
        return tuple(x + y for x, y in zip(a, b))

    rgb = (3,) * len(widths)
    stem, stages, low_index, low_channels, high = _ENCODERS[config.arch](config, ch, unit, rgb)
    if low_index < 0:
        raise AssertionError("the encoder has no stride-8 stage for the decoder skip")

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
