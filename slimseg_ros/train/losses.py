"""Training losses: cross-entropy (plain, OHEM), KD, SlimSeg's boundary term, Knowledge Adaptation.

All losses take logits already at label resolution, shape (N, K, H, W), and labels (N, H, W) with
``ignore_index`` marking pixels that carry no supervision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "boundary_mask", "kd_loss", "ce_loss", "ohem_ce_loss", "masked_ce", "boundary_guided_loss",
    "image_kd_loss", "adaptation_loss", "pixel_affinity", "pixel_affinity_loss",
    "region_similarity_loss",
]


def boundary_mask(labels: torch.Tensor, kernel_size: int = 5,
                  ignore_index: int = 255) -> torch.Tensor:
    """Pixels whose ``kernel_size`` x ``kernel_size`` window holds another *valid* class.

    Ignore pixels are never on a boundary and never create one (a road pixel next to void is not
    an edge: we do not know what the void is).

    Shape:
        labels: (N, H, W) integer. Returns a bool tensor of the same shape.
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    valid = labels != ignore_index
    lab = labels.to(torch.float32).unsqueeze(1)  # (N, 1, H, W)
    pad = kernel_size // 2
    # max over valid neighbours (ignore -> -1) and min over valid neighbours (ignore -> +inf-ish)
    hi = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, -1.0))
    lo = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, 1e6))
    max_nb = F.max_pool2d(hi, kernel_size, stride=1, padding=pad)
    min_nb = -F.max_pool2d(-lo, kernel_size, stride=1, padding=pad)
    other = (max_nb > lab) | (min_nb < lab)
    return (other.squeeze(1)) & valid


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean cross-entropy over valid pixels (0 when a batch has none, never NaN)."""
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    valid = labels != ignore_index
    return per_pixel.sum() / valid.sum().clamp_min(1)


def ohem_ce_loss(logits: torch.Tensor, labels: torch.Tensor, thresh: float = 0.7,
                 min_kept: float = 0.1, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy over the hard pixels only (online hard example mining, as in BiSeNet/PSPNet).

    A pixel is hard when the predicted probability of its true class is below ``thresh``; at
    least the ``min_kept`` fraction of valid pixels (the hardest ones) is always kept, so an
    easy batch still trains. Easy road and sky pixels stop dominating the mean, which leaves the
    gradient to thin classes and borders.
    """
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    valid = (labels != ignore_index).flatten()
    losses = per_pixel.flatten()[valid]
    if losses.numel() == 0:
        return per_pixel.sum() * 0.0
    # p_true < thresh  <=>  CE > -log(thresh)
    hard = losses > -torch.log(torch.tensor(thresh, dtype=losses.dtype))
    keep = max(1, int(min_kept * losses.numel()))
    if int(hard.sum()) < keep:
        return losses.topk(keep, sorted=False).values.mean()
    return losses[hard].mean()


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, summed over classes, mean over
    pixels.

    The teacher is detached here, so callers cannot train the wider width through its student.
    ``mask`` (N, H, W) bool restricts the mean to those pixels.
    """
    t = temperature
    log_p_s = F.log_softmax(student / t, dim=1)
    log_p_t = F.log_softmax(teacher.detach() / t, dim=1)
    per_pixel = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)  # (N, H, W), >= 0
    if mask is None:
        return per_pixel.mean() * t * t
    return (per_pixel * mask).sum() / mask.sum().clamp_min(1) * t * t


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
              ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy averaged over the pixels in ``mask`` only."""
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return (per_pixel * mask).sum() / mask.sum().clamp_min(1)


def boundary_guided_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                         teacher: torch.Tensor | None = None, temperature: float = 1.0,
                         kd_weight: float = 0.0, ignore_index: int = 255) -> torch.Tensor:
    """SlimSeg's boundary term: CE (plus KD when a teacher is given) restricted to boundary pixels.

    The widths of a slimmable network disagree mostly near semantic borders, so these pixels get
    extra weight on top of the full-image terms.
    """
    loss = masked_ce(logits, labels, mask, ignore_index)
    if teacher is not None and kd_weight > 0.0:
        loss = loss + kd_weight * kd_loss(logits, teacher, temperature, mask)
    return loss


def image_kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MGD's image-level term: L1 between globally pooled logits, averaged over batch and classes.

    (MGD sums over batch and classes and compensates with a tiny weight; the mean keeps the scale
    independent of batch size and class count.)
    """
    return (student.float().mean((2, 3)) - teacher.detach().float().mean((2, 3))).abs().mean()


def adaptation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Knowledge Adaptation's feature term: L1 between L2-normalised feature vectors.

    Each spatial position's channel vector is L2-normalised (q = 2; each position on its own,
    not each whole sample as a popular re-implementation does), then the absolute differences
    (p = 1) are averaged over positions and channels, for (N, C, h, w) maps of equal shape: the
    student's adapted features and the teacher's features in the autoencoder's latent space.
    Averaging over channels too keeps the term near 0.05 for unrelated features, the scale at
    which the paper's weight of 50 sits beside a cross-entropy of about 1. The teacher is
    detached.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"adapted student features {list(student.shape)} and teacher latent "
                         f"{list(teacher.shape)} must have the same shape")
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.detach().float(), dim=1)
    return (s - t).abs().mean()


def pixel_affinity(features: torch.Tensor) -> torch.Tensor:
    """Pixel-pair cosine affinity ``A_ij = f_i . f_j / (||f_i|| ||f_j||)``:
    (N, C, h, w) -> (N, hw, hw).

    Memory is O((hw)^2) per image: at 1/16 of 360x480 (23x30 positions) 476k entries, 1.9 MB.
    """
    f = F.normalize(features.float().flatten(2), dim=1)  # (N, C, hw), unit vector per position
    return f.transpose(1, 2) @ f


def pixel_affinity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Knowledge Adaptation's affinity term: squared difference of the pixel-pair affinities.

    ``(1/m^2) sum_ij (A^s_ij - A^t_ij)^2`` with ``m = h*w``, averaged over the batch. Only the
    spatial sizes must agree: each map is compared with itself first, so channel counts may
    differ (any width against the teacher). The teacher is detached.
    """
    if student.shape[0] != teacher.shape[0] or student.shape[-2:] != teacher.shape[-2:]:
        raise ValueError("affinity needs equal batch and spatial sizes, "
                         f"got {list(student.shape)} and {list(teacher.shape)}")
    return F.mse_loss(pixel_affinity(student), pixel_affinity(teacher.detach()))


def region_similarity_loss(student: torch.Tensor, teacher: torch.Tensor, grid: int = 7
                           ) -> torch.Tensor:
    """MGD's region-level content-aware term: self-similarity of region-pooled features.

    Both maps are average-pooled to ``grid`` x ``grid`` regions, each region's vector is
    L2-normalised, and the (grid^2 x grid^2) cosine self-similarities are matched with an MSE.
    Channel counts may differ (any width against any teacher); the teacher is detached.
    """
    def similarity(x: torch.Tensor) -> torch.Tensor:
        q = F.normalize(F.adaptive_avg_pool2d(x.float(), grid).flatten(2), dim=1)
        return q.transpose(1, 2) @ q

    return F.mse_loss(similarity(student), similarity(teacher.detach()))
