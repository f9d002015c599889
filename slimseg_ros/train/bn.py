"""BN recalibration: re-estimate each width's running statistics on new images.

Trained widths of a switchable-BN network need no calibration. This is for domain shift (the
robot's camera is not the training camera): feed a few hundred in-domain frames, weights frozen.
The reference slimmable code flipped ``training`` on inner BN layers that its wrapper then ignored,
so recalibration silently did nothing; here every ``BatchNorm2d`` really runs in train mode, with a
cumulative average (``momentum=None``) so the result does not depend on the order of batches.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..model.slimseg import SlimSegNet

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: SlimSegNet, batches: Iterable[torch.Tensor],
                   widths: Sequence[float] | None = None, max_batches: int = 50) -> int:
    """Reset and re-estimate BN statistics of ``widths`` (default all) from image ``batches``.

    ``batches`` yields normalised (N, 3, H, W) float tensors (re-iterable: it is read once per
    width). Returns the number of batches used per width. The model is left in eval mode.
    """
    widths = tuple(widths or model.widths)
    previous = model.width
    used = 0
    try:
        for width in widths:
            idx = model.width_index(width)
            bns = [m.bn[idx] for m in model.modules() if getattr(m, "bn", None) is not None
                   and isinstance(m.bn, nn.ModuleList)]
            saved = [bn.momentum for bn in bns]
            model.eval()
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative moving average
                bn.train()
            model.set_width(width)
            used = 0
            for x in batches:
                model(x)
                used += 1
                if used >= max_batches:
                    break
            for bn, m in zip(bns, saved):
                bn.momentum = m
            if used == 0:
                raise ValueError("recalibrate_bn got no batches")
    finally:
        model.set_width(previous)
        model.eval()
    return used
