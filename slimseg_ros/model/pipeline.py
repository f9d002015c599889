"""Pre- and post-processing as part of the exported graph: uint8 image in, uint8 labels out.

Putting normalisation, argmax and the label upsample inside the module means every backend
(torch, ONNX Runtime, TensorRT) runs the same graph, uploads 1 byte per pixel channel instead of 4,
and downloads 1 byte per pixel instead of ``num_classes`` floats.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SegmentationPipeline", "UPSAMPLE_MODES"]

UPSAMPLE_MODES = ("nearest", "bilinear")


class SegmentationPipeline(nn.Module):
    """Wrap a logits network: (1, H, W, 3) uint8 RGB -> (H, W) uint8 class indices.

    Args:
        net: normalised float image -> logits at a lower resolution.
        mean, std: per-channel normalisation on [0, 1] images.
        upsample: ``"nearest"`` (default) takes the argmax at logit resolution and upsamples the
            labels; ``"bilinear"`` upsamples the logits to full size first (sharper edges, but
            every class's logits are resized and compared at every pixel, a cost that a CPU
            feels).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.net = net
        self.upsample = upsample
        std_t = torch.tensor(std, dtype=torch.float32)
        # fold x/255 and (x - mean)/std into one multiply-add
        self.register_buffer("scale", (1.0 / (255.0 * std_t)).reshape(1, 3, 1, 1))
        self.register_buffer("shift", (-torch.tensor(mean) / std_t).reshape(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[1], image.shape[2]
        x = image.permute(0, 3, 1, 2).to(self.scale.dtype) * self.scale + self.shift
        logits = self.net(x)
        if self.upsample == "bilinear":
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            return logits.argmax(1)[0].to(torch.uint8)
        labels = logits.argmax(1)[0]  # (h/8, w/8)
        # nearest upsample by gathering rows and columns: exact, cheap and exportable everywhere
        rows = (torch.arange(h, device=image.device) * labels.shape[0]) // h
        cols = (torch.arange(w, device=image.device) * labels.shape[1]) // w
        return labels[rows][:, cols].to(torch.uint8)
