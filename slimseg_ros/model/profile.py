"""FLOPs and parameter counts per width (torch's own FLOP counter on the frozen module)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_params"]


def count_flops(module: nn.Module, input_size: tuple[int, int]) -> int:
    """FLOPs (2 x multiply-adds) of one forward on a (1, 3, H, W) float input."""
    x = torch.zeros(1, 3, *input_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return int(counter.get_total_flops())


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
