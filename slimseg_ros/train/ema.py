"""An exponential moving average of a model's weights: smoother final weights, MGD's mean
teacher."""

from __future__ import annotations

import copy

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """An exponential moving average of a model's weights and BN statistics.

    The decay ramps up as ``(1 + step) / (10 + step)`` so the early average does not hold the
    random initialisation (``ramp=False`` when the starting weights are already good, as when
    adapting a trained model); integer buffers (BN's batch counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float, ramp: bool = True) -> None:
        self.decay, self.ramp = decay, ramp
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step)) if self.ramp else self.decay
        for avg, new in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(new.detach(), 1.0 - decay)
        for avg, new in zip(self.model.buffers(), model.buffers()):
            if avg.is_floating_point():
                avg.lerp_(new, 1.0 - decay)
            else:
                avg.copy_(new)
