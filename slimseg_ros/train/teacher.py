"""An external teacher for distillation: a frozen checkpoint of this package, run at its widest
width.

The teacher is trained by this package like any model (``config/train_camvid_teacher.yaml``) and
kept as a safetensors checkpoint; here it is only loaded, checked against the student's data
contract (classes, normalisation) and run without gradients in eval mode, so its BN statistics
never drift while the student trains (a known slip of the MGD reference code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..model.checkpoint import CheckpointMeta, file_sha256, load_checkpoint
from ..model.slimseg import SlimSegNet

__all__ = ["Teacher", "TeacherOutputs", "load_teacher"]


@dataclass
class TeacherOutputs:
    """What one teacher forward gives the student: logits, encoder and decoder features."""

    logits: torch.Tensor  # (N, K, h8, w8)
    features: torch.Tensor  # (N, C, h16, w16): the encoder's output (Knowledge Adaptation)
    decoded: torch.Tensor  # (N, D, h8, w8): the decoder's last features (MGD region level)

    def logits_at(self, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.logits, size=size, mode="bilinear", align_corners=False)


class Teacher:
    """A frozen network at its widest width; ``teacher(images)`` -> :class:`TeacherOutputs`.

    ``path`` is the checkpoint it came from, or None for a teacher that lives in memory (the
    student's own weight average, MGD's mean teacher).
    """

    def __init__(self, model: SlimSegNet, meta: CheckpointMeta | None = None,
                 path: Path | None = None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.set_width(model.widths[-1])
        self.meta = meta
        self.path = path
        self._sha256: str | None = None

    @property
    def sha256(self) -> str:
        """The checkpoint's digest (ties an autoencoder trained on its features to it)."""
        if self.path is None:
            raise ValueError("an in-memory teacher has no checkpoint digest")
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    @property
    def feature_channels(self) -> int:
        return int(self.model.net.head.high_proj.in_channels[-1])

    def to(self, device: torch.device) -> "Teacher":
        self.model.to(device, memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> TeacherOutputs:
        self.model.eval()
        self.model.set_width(self.model.widths[-1])
        logits, features, decoded = self.model.forward_parts(images)
        return TeacherOutputs(logits.float(), features.float(), decoded.float())


def load_teacher(path: str | Path, *, num_classes: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> Teacher:
    """Load ``path`` as a teacher for a student with these classes and normalisation.

    Raises ``ValueError`` in one sentence when the teacher predicts other classes or expects
    differently normalised images (its logits would mean something else).
    """
    path = Path(path)
    model, meta = load_checkpoint(path)
    if meta.config.num_classes != num_classes:
        raise ValueError(f"teacher {path} predicts {meta.config.num_classes} classes, "
                         f"the student {num_classes}")
    if not (_close(meta.mean, mean) and _close(meta.std, std)):
        raise ValueError(f"teacher {path} normalises with mean {list(meta.mean)} / std "
                         f"{list(meta.std)}, the student with {list(mean)} / {list(std)}")
    return Teacher(model, meta, path)


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    # float32 round trips (a transform's mean) must not make equal settings differ
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b))
