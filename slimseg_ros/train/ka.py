"""Knowledge Adaptation (He et al., CVPR 2019) for a slimmable student.

Stage 1 trains an autoencoder on the frozen teacher's 1/16 features (reconstruction plus a tiny L1
on the code, which keeps it from learning the identity) and then freezes it: its code is a compact
"latent" version of what the teacher knows. Stage 2 trains the student with, per width, two
training-only adapters on the student's 1/16 features: one whose output must match the teacher's
latent position by position (:func:`~slimseg_ros.train.losses.adaptation_loss`, weight beta = 50),
one whose pixel-pair affinities must match the latent's
(:func:`~slimseg_ros.train.losses.pixel_affinity_loss`, weight gamma = 1).

Adapters and the autoencoder live here, outside :class:`~slimseg_ros.model.slimseg.SlimSegNet`:
they are never part of a checkpoint the node loads nor of any exported graph.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..model.config import width_key
from ..model.slimseg import SlimSegNet
from .losses import adaptation_loss, pixel_affinity_loss
from .teacher import Teacher

__all__ = [
    "FeatureAutoencoder", "KnowledgeAdaptation", "KA_TARGETS", "autoencoder_loss",
    "train_autoencoder", "save_autoencoder", "load_autoencoder",
]

# which widths get KA terms, and against what:
#   widest    width 1.0 against the teacher's latent (the paper's one student)
#   all       every width against the teacher's latent, each with its own adapters
#   adjacent  width 1.0 against the teacher; each narrower width against its wider neighbour's
#             adapted features (detached), the latent-space analogue of stepwise KD
KA_TARGETS = ("widest", "all", "adjacent")


def _conv_bn_relu(cin: int, cout: int, transpose: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(cin, cout, 3, 1, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FeatureAutoencoder(nn.Module):
    """Three 3x3 convs down to ``latent`` channels and a mirrored transposed-conv decoder.

    Stride 1 throughout, so the latent keeps the teacher's 1/16 grid and lines up with the
    student's features position by position.
    """

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__()
        mid = (channels + latent) // 2
        self.channels, self.latent = channels, latent
        self.encoder = nn.Sequential(
            _conv_bn_relu(channels, mid), _conv_bn_relu(mid, latent),
            _conv_bn_relu(latent, latent))
        self.decoder = nn.Sequential(
            _conv_bn_relu(latent, latent, transpose=True),
            _conv_bn_relu(latent, mid, transpose=True),
            nn.ConvTranspose2d(mid, channels, 3, 1, 1),
        )

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(features)
        return self.decoder(code), code


def autoencoder_loss(features: torch.Tensor, reconstruction: torch.Tensor, code: torch.Tensor,
                     l1_weight: float = 1e-7) -> torch.Tensor:
    """``||phi - D(E(phi))||_2^2 + alpha * ||E(phi)||_1`` per image, divided by phi's size.

    Both norms are sums as in the paper (so alpha = 1e-7 keeps its meaning) and share one
    normaliser, which only rescales the loss for the optimiser.
    """
    n = features.numel()
    return ((reconstruction - features) ** 2).sum() / n + l1_weight * code.abs().sum() / n


def train_autoencoder(teacher: Teacher, images: Iterator[torch.Tensor], *, latent: int,
                      steps: int, lr: float, weight_decay: float = 1e-4, l1_weight: float = 1e-7,
                      device: torch.device = torch.device("cpu"),
                      log: Callable[[str], None] = print) -> tuple[FeatureAutoencoder, dict]:
    """Stage 1: fit an autoencoder to the teacher's features on ``steps`` batches of images.

    SGD with momentum and a poly-decayed learning rate (paper: lr 0.1, weight decay 1e-4).
    Returns the frozen autoencoder (eval mode) and a summary with the loss curve.
    """
    ae = FeatureAutoencoder(teacher.feature_channels, latent).to(device).train()
    opt = torch.optim.SGD(ae.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    curve: list[float] = []
    t0 = time.monotonic()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - step / steps) ** 0.9
        feats = teacher(next(images).to(device, memory_format=torch.channels_last)).features
        recon, code = ae(feats)
        loss = autoencoder_loss(feats, recon, code, l1_weight)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"autoencoder loss is {value} at step {step}; "
                                     "lower loss.ka_ae_lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(value)
        if (step + 1) % max(1, steps // 10) == 0 or step == 0:
            # relative error: how much of the teacher's feature energy the code fails to carry
            rel = float(((recon.detach() - feats) ** 2).sum()
                        / (feats ** 2).sum().clamp_min(1e-12))
            log(f"autoencoder step {step + 1}/{steps}: loss {value:.4f}, "
                f"relative reconstruction error {rel:.3f}")
    summary = {"steps": steps, "lr": lr, "weight_decay": weight_decay, "l1_weight": l1_weight,
               "first_loss": curve[0], "final_loss": sum(curve[-10:]) / len(curve[-10:]),
               "seconds": round(time.monotonic() - t0, 1)}
    return _freeze(ae), summary


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def save_autoencoder(path: str | Path, ae: FeatureAutoencoder, teacher: Teacher,
                     summary: dict) -> Path:
    """Write the autoencoder as safetensors, tied to the teacher checkpoint's digest."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"channels": ae.channels, "latent": ae.latent, "teacher_sha256": teacher.sha256,
            "teacher": str(teacher.path), "training": summary}
    tensors = {k: v.detach().cpu().contiguous() for k, v in ae.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"ka_autoencoder": json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_autoencoder(path: str | Path, teacher: Teacher) -> FeatureAutoencoder:
    """Load an autoencoder written by :func:`save_autoencoder` for exactly this teacher."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = json.loads((handle.metadata() or {})["ka_autoencoder"])
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # missing file, not safetensors, no or bad metadata
        raise ValueError(f"{path}: not a Knowledge Adaptation autoencoder "
                         f"({type(exc).__name__}: {exc})") from None
    if meta.get("teacher_sha256") != teacher.sha256:
        raise ValueError(f"{path} was trained on the features of another teacher than "
                         f"{teacher.path}; delete it to train a new one")
    ae = FeatureAutoencoder(int(meta["channels"]), int(meta["latent"]))
    ae.load_state_dict(state)
    return _freeze(ae)


class KnowledgeAdaptation(nn.Module):
    """The frozen autoencoder plus the per-width adapters (training-only).

    Args:
        autoencoder: stage 1's frozen autoencoder on the teacher's features.
        student: the slimmable student (for each width's 1/16 feature channels).
        target: one of :data:`KA_TARGETS`.
    """

    def __init__(self, autoencoder: FeatureAutoencoder, student: SlimSegNet,
                 target: str = "widest") -> None:
        super().__init__()
        if target not in KA_TARGETS:
            raise ValueError(f"loss.ka_target must be one of {KA_TARGETS}, got {target!r}")
        self.autoencoder = _freeze(autoencoder)
        self.target = target
        channels = student.net.head.high_proj.in_channels  # 1/16 channels per width
        widths: Sequence[float] = student.widths if target != "widest" else student.widths[-1:]
        latent = autoencoder.latent
        self.feature_adapters = nn.ModuleDict({
            _key(w): _conv_bn_relu(channels[student.width_index(w)], latent) for w in widths})
        self.affinity_adapters = nn.ModuleDict({
            _key(w): _conv_bn_relu(channels[student.width_index(w)], latent) for w in widths})

    def train(self, mode: bool = True) -> "KnowledgeAdaptation":
        super().train(mode)
        self.autoencoder.eval()  # frozen: its BN statistics stay those of stage 1
        return self

    def applies_to(self, width: float) -> bool:
        return _key(width) in self.feature_adapters

    @torch.no_grad()
    def teacher_latent(self, teacher_features: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(teacher_features)

    def terms(self, width: float, student_features: torch.Tensor, teacher_latent: torch.Tensor,
              wider_latent: torch.Tensor | None,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(adaptation loss, affinity loss, this width's adapted features) for ``width``.

        The target is the teacher's latent, or with ``target="adjacent"`` and a narrower width,
        the wider neighbour's adapted features (``wider_latent``).
        """
        key = _key(width)
        adapted = self.feature_adapters[key](student_features)
        for_affinity = self.affinity_adapters[key](student_features)
        target = teacher_latent
        if self.target == "adjacent" and wider_latent is not None:
            target = wider_latent
        if adapted.shape[-2:] != target.shape[-2:]:  # odd input sizes can round differently
            adapted = F.interpolate(adapted, size=target.shape[-2:], mode="bilinear",
                                    align_corners=False)
            for_affinity = F.interpolate(for_affinity, size=target.shape[-2:], mode="bilinear",
                                         align_corners=False)
        return (adaptation_loss(adapted, target), pixel_affinity_loss(for_affinity, target),
                adapted.detach())


def _key(width: float) -> str:
    return width_key(width).replace(".", "_")  # ModuleDict keys may not contain dots
