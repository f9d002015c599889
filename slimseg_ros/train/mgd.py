"""Multi-Granularity Distillation (Qin et al., ECCV 2022) for a slimmable student.

Two structurally different, frozen teachers label unlabelled frames: the external teacher
(``loss.teacher``, a ResNet-18: MGD's "deep" teacher) and a weight average of the student itself
run at its widest width (a mean teacher, same architecture as the student: the "wide" one). Either
can be turned off. Per step, two unlabelled batches ``u0, u1`` are mixed with CutMix boxes; each
teacher predicts ``u0`` and ``u1`` separately, the predictions are mixed with the same boxes and
averaged over the teachers (and, with ``teacher_flip``, over each frame and its mirror image),
and the argmax (where confident enough) is the pseudo label of the
mixed image. The student learns from it at three granularities:

- pixel: the SlimSeg loss (CE, stepwise KD, boundary term) on the mixed images with the pseudo
  labels, at every width (weight ``pixel_weight``), and CE to the teachers' argmax on the
  labelled batch (``pixel_labeled_weight``);
- region: self-similarity of 7x7-pooled decoder features, student vs the mean teacher (else the
  external one) on the mixed images (``region_weight``, MGD's lambda2 = 50 for MobileNetV2);
- image: L1 between globally pooled logits, student vs the external teacher (else the mean one)
  on the mixed images (``image_weight``; MGD's lambda1 multiplies a sum over a 2-image, 21-class
  batch, here a mean, hence 0.0005 x 42 ~ 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn.functional as F

from ..model.slimseg import SlimSegNet
from .config import MGDConfig
from .ema import WeightAverage
from .losses import ce_loss, image_kd_loss, region_similarity_loss
from .step import ExtraTerms
from .teacher import Teacher, TeacherOutputs

__all__ = ["cutmix_masks", "MeanTeacher", "MGD", "MixedBatch"]

def cutmix_masks(n: int, height: int, width: int, *, boxes: int = 3,
                 area: tuple[float, float] = (0.25, 0.5),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 1, H, W) float masks, 1 inside the union of ``boxes`` random boxes per image.

    Each box covers a fraction of the image drawn from ``area``, with a random aspect ratio
    (log-uniform in [1/2, 2]) and a random position, clipped to the image (CPS/MGD's generator).
    """
    masks = torch.zeros(n, 1, height, width)
    for i in range(n):
        for _ in range(boxes):
            u = torch.rand(4, generator=generator)
            frac = area[0] + (area[1] - area[0]) * float(u[0])
            aspect = float(torch.exp((u[1] * 2 - 1) * torch.log(torch.tensor(2.0))))
            bh = min(height, max(1, round((frac * height * width / aspect) ** 0.5)))
            bw = min(width, max(1, round((frac * height * width * aspect) ** 0.5)))
            y = int(u[2] * (height - bh + 1))
            x = int(u[3] * (width - bw + 1))
            masks[i, 0, y:y + bh, x:x + bw] = 1.0
    return masks


class MeanTeacher(Teacher):
    """A weight average of the student, run at its widest width (MGD's second teacher)."""

    def __init__(self, student: SlimSegNet, decay: float, ramp: bool = True) -> None:
        self.average = WeightAverage(student, decay, ramp)
        super().__init__(self.average.model)

    def update(self, student: SlimSegNet, step: int) -> None:
        self.average.update(student, step)


@dataclass
class MixedBatch:
    """CutMix-mixed unlabelled images, their pseudo labels and the teachers' targets."""

    images: torch.Tensor  # (N, 3, H, W)
    labels: torch.Tensor  # (N, H, W) int64, ignore where no teacher was confident enough
    region_target: torch.Tensor | None  # teacher decoder features on ``images``
    image_target: torch.Tensor | None  # teacher logits on ``images``
    confident: float  # fraction of pixels that got a pseudo label
    # the external teacher's outputs on ``images`` when they were computed (for its KD, reused)
    external_outputs: TeacherOutputs | None = None


class MGD:
    """Pseudo labels and the region/image terms from up to two teachers."""

    def __init__(self, cfg: MGDConfig, external: Teacher | None, mean: MeanTeacher | None,
                 ignore_index: int = 255) -> None:
        if external is None and mean is None:
            raise ValueError("MGD needs a teacher: set loss.teacher or keep mgd.ema_teacher on")
        self.cfg, self.external, self.mean, self.ignore_index = cfg, external, mean, ignore_index
        self.teachers = [t for t in (external, mean) if t is not None]
        self.region_teacher = mean or external  # structure-level: the same architecture first
        self.image_teacher = external or mean  # semantics: the stronger network first

    @torch.no_grad()
    def _probs(self, images: torch.Tensor) -> torch.Tensor:
        """Mean of the teachers' class probabilities at image resolution."""
        size = images.shape[-2:]
        views = [False, True] if self.cfg.teacher_flip else [False]
        total = 0.0
        for teacher in self.teachers:
            for flipped in views:
                x = images.flip(-1) if flipped else images
                logits = F.interpolate(teacher(x).logits, size=size, mode="bilinear",
                                       align_corners=False)
                probs = logits.softmax(1)
                total = total + (probs.flip(-1) if flipped else probs)
        return total / (len(self.teachers) * len(views))

    def _pseudo(self, probs: torch.Tensor) -> tuple[torch.Tensor, float]:
        confidence, labels = probs.max(1)
        threshold = torch.full((probs.shape[1],), self.cfg.confidence, device=probs.device)
        if self.cfg.class_fraction > 0:
            # Class-balanced selection (CBST): each predicted class keeps at least its most
            # confident ``class_fraction`` of pixels, so thin, rarely confident classes (poles,
            # signs) still get labels and are not trained away by the confident large ones.
            for c in labels.unique().tolist():
                scores = confidence[labels == c].float()
                # torch.quantile refuses inputs above 2**24 elements
                top = torch.quantile(scores[:1 << 24], 1.0 - self.cfg.class_fraction)
                threshold[c] = torch.minimum(threshold[c], top)
        keep = confidence >= threshold[labels]
        labels[~keep] = self.ignore_index
        return labels, float(keep.float().mean())

    @torch.no_grad()
    def mixed_batch(self, u0: torch.Tensor, u1: torch.Tensor,
                    generator: torch.Generator | None = None) -> MixedBatch:
        n, _, h, w = u0.shape
        m = cutmix_masks(n, h, w, boxes=self.cfg.cutmix_boxes, area=self.cfg.cutmix_area,
                         generator=generator).to(u0.device)
        mixed = (u0 * (1 - m) + u1 * m).contiguous(memory_format=torch.channels_last)
        # predictions of the unmixed images, mixed: no teacher sees a box edge
        labels, confident = self._pseudo(self._probs(u0) * (1 - m) + self._probs(u1) * m)
        region = image = None
        outputs: dict[int, TeacherOutputs] = {}
        if self.cfg.region_weight > 0 or self.cfg.image_weight > 0:
            outputs = {id(t): t(mixed) for t in {id(t): t for t in self.teachers}.values()}
            region = outputs[id(self.region_teacher)].decoded
            image = outputs[id(self.image_teacher)].logits
        return MixedBatch(mixed, labels, region, image, confident, outputs.get(id(self.external)))

    @torch.no_grad()
    def labeled_targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teachers' combined argmax on labelled images (MGD's labelled pixel term)."""
        return self._pseudo(self._probs(images))[0]

    def unlabeled_terms(self, batch: MixedBatch) -> ExtraTerms:
        """Region and image terms of one width against ``batch``'s teacher targets."""
        cfg = self.cfg

        def terms(width: float, logits: torch.Tensor, decoded: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
            out = {}
            if cfg.region_weight > 0 and batch.region_target is not None:
                out["mgd_region"] = cfg.region_weight * region_similarity_loss(
                    decoded, batch.region_target, cfg.region_grid)
            if cfg.image_weight > 0 and batch.image_target is not None:
                out["mgd_image"] = cfg.image_weight * image_kd_loss(logits, batch.image_target)
            return out

        return terms

    def labeled_terms(self, targets: torch.Tensor) -> ExtraTerms:
        weight = self.cfg.pixel_labeled_weight

        def terms(width: float, logits: torch.Tensor, decoded: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
            size = targets.shape[-2:]
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return {"mgd_pixel_labeled": weight * ce_loss(logits, targets, self.ignore_index)}

        return terms
