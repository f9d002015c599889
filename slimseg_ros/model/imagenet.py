"""Start the slimmable encoder from torchvision's ImageNet MobileNetV2 weights.

Every robotics team with internet access has ``mobilenet_v2-*.pth`` (torchvision's
``MobileNet_V2_Weights.IMAGENET1K_V1`` or ``_V2``). Its 51 conv + BN pairs map one to one onto the
encoder's 51 slimmable units in order (the stem, then per block the expand, depthwise and project
convs; the first block has no expand); the 1280-channel tail (``features.18``) and the classifier
are not part of the encoder and are skipped. Each unit's full weight is the width-1.0 filter bank,
so it takes the ImageNet weight as it is; width 1.0's BN takes ImageNet's BN, and each narrower
width's private BN starts from the first channels of it (what slicing the weight selects).

The file is read with ``torch.load(weights_only=True)`` (no unpickling of code) or as safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .ops import SlimConv
from .segnet import MOBILENETV2_STAGES
from .slimseg import SlimSegNet

__all__ = ["torchvision_mobilenet_v2_pairs", "load_imagenet_encoder", "read_state_dict"]

_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


def torchvision_mobilenet_v2_pairs() -> list[tuple[str, str]]:
    """(conv weight key, BN prefix) of torchvision's MobileNetV2 encoder, in forward order."""
    pairs = [("features.0.0.weight", "features.0.1")]
    index = 1
    for t, _c, n, _s in MOBILENETV2_STAGES:
        for _ in range(n):
            f = f"features.{index}.conv"
            if t == 1:  # depthwise, project
                pairs += [(f"{f}.0.0.weight", f"{f}.0.1"), (f"{f}.1.weight", f"{f}.2")]
            else:  # expand, depthwise, project
                pairs += [(f"{f}.0.0.weight", f"{f}.0.1"), (f"{f}.1.0.weight", f"{f}.1.1"),
                          (f"{f}.2.weight", f"{f}.3")]
            index += 1
    return pairs


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt`` (weights only, never code) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated, not a tensor file
        raise ValueError(f"{path}: not a readable state dict ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"],
                                                                          Mapping):
        state = state["state_dict"]  # a training checkpoint that wraps it
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise ValueError(f"{path}: expected a mapping of tensor names to tensors")
    return dict(state)


@torch.no_grad()
def load_imagenet_encoder(model: SlimSegNet, path: str | Path) -> int:
    """Copy torchvision MobileNetV2 ImageNet weights into ``model``'s encoder; returns units set.

    Raises ``ValueError`` in one sentence when the file has another layout (a missing tensor,
    a shape that differs) or the model is not the MobileNetV2 architecture.
    """
    if model.config.arch != "mobilenetv2_lraspp":
        raise ValueError(f"ImageNet MobileNetV2 weights fit the mobilenetv2_lraspp encoder, "
                         f"not {model.config.arch}")
    state = read_state_dict(path)
    pairs = torchvision_mobilenet_v2_pairs()
    wanted = [k for conv, bn in pairs for k in (conv, *(f"{bn}.{f}" for f in _BN_FIELDS))]
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"{path} is not a torchvision MobileNetV2 state dict: it lacks "
                         f"{missing[0]!r} ({len(missing)} of {len(wanted)} encoder tensors "
                         "missing)")
    units = [m for m in (model.net.stem, *model.net.stages.modules()) if isinstance(m, SlimConv)]
    if len(units) != len(pairs):
        raise AssertionError(f"{len(units)} encoder units for {len(pairs)} ImageNet layers")
    for unit, (conv, bn) in zip(units, pairs):
        weight = state[conv]
        if tuple(weight.shape) != tuple(unit.weight.shape):
            raise ValueError(f"{path}: {conv} has shape {list(weight.shape)}, the encoder needs "
                             f"{list(unit.weight.shape)} (is it MobileNetV2 at width 1.0?)")
        unit.weight.copy_(weight)
        for i, norm in enumerate(unit.bn):
            c = unit.out_channels[i]
            for name in _BN_FIELDS:
                getattr(norm, name).copy_(state[f"{bn}.{name}"][:c])
    return len(units)
