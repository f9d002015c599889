"""``SlimSegNet``: one network, several widths; ``freeze`` turns one width into a static module."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .. import widths as width_rule
from .config import ModelConfig
from .ops import SlimConv
from .segnet import SegNet, build_segnet, slim_unit, static_unit

__all__ = ["SlimSegNet", "build_static", "LOGIT_STRIDE"]

LOGIT_STRIDE = 8  # logits come out at 1/8 of the input resolution


class SlimSegNet(nn.Module):
    """Slimmable segmentation network.

    The active width is explicit state: :meth:`set_width` accepts only the model's own widths
    (the error lists them) and sets every slimmable unit through one code path. Not re-entrant:
    one width at a time per instance, which is why deployment uses :meth:`freeze` instead.

    Shape:
        input: (N, 3, H, W) float, normalised with the checkpoint's mean/std.
        output: (N, num_classes, ceil(H/8), ceil(W/8)) logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.net = build_segnet(config, config.widths, slim_unit)
        self._units = [m for m in self.net.modules() if isinstance(m, SlimConv)]
        self._width = config.widths[-1]

    @property
    def widths(self) -> tuple[float, ...]:
        return self.config.widths

    @property
    def width(self) -> float:
        return self._width

    def width_index(self, width: float) -> int:
        """Index of ``width`` in :attr:`widths`; ``ValueError`` naming the valid widths
        otherwise."""
        return width_rule.width_index(width, self.widths)

    def set_width(self, width: float) -> None:
        idx = self.width_index(width)
        for unit in self._units:
            unit.idx = idx
        self._width = self.widths[idx]

    @contextlib.contextmanager
    def using_width(self, width: float) -> Iterator["SlimSegNet"]:
        """``with model.using_width(0.5): ...`` runs at 0.5 and restores the previous width."""
        previous = self._width
        self.set_width(width)
        try:
            yield self
        finally:
            self.set_width(previous)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the encoder's 1/16 output (what feature distillation matches) in one pass."""
        logits, high, _ = self.forward_parts(x)
        return logits, high

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, encoder 1/16 output, decoder 1/8 features) in one pass, for distillation."""
        low, high = self.net.encode(x)
        decoded = self.net.head.features(low, high)
        return self.net.head.classifier(decoded), high, decoded

    @torch.no_grad()
    def freeze(self, width: float) -> SegNet:
        """Materialise ``width`` as a plain ``SegNet`` of ``nn.Conv2d`` with BN folded in.

        The result has no slicing and no switchable BN, is in eval mode, owns contiguous copies
        of its weights, and is what every backend compiles (``torch.export`` with static shapes).
        """
        idx = self.width_index(width)
        return _freeze_tree(self.net, idx).eval()


def _freeze_tree(module: nn.Module, idx: int) -> nn.Module:
    """Copy a container tree, replacing every ``SlimConv`` leaf with its folded width ``idx``."""
    if isinstance(module, SlimConv):
        return module.fold(idx)
    if next(module.parameters(recurse=False), None) is not None:
        raise AssertionError(f"{type(module).__name__} holds weights outside a SlimConv")
    clone = module.__new__(type(module))
    clone.__dict__ = module.__dict__.copy()
    clone._modules = {name: _freeze_tree(child, idx) for name, child in module._modules.items()}
    clone._parameters = {}
    clone._buffers = {}
    return clone


def build_static(config: ModelConfig, width: float) -> SegNet:
    """An independently constructed plain network with the channel counts of ``width``.

    Not sliced from anything: the reference that shows slimmability costs nothing at inference.
    """
    width = width_rule.match_width(width, config.widths)
    return build_segnet(config, (width,), static_unit).eval()
