"""SlimSeg losses: cross-entropy, stepwise downward KD, and the boundary-guided term.

All losses take logits already at label resolution, shape (N, K, H, W), and labels (N, H, W) with
``ignore_index`` marking pixels that carry no supervision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "boundary_mask", "kd_loss", "ce_loss", "masked_ce", "boundary_guided_loss", "affinity_loss",
    "image_kd_loss",
]


def boundary_mask(labels: torch.Tensor, kernel_size: int = 5, ignore_index: int = 255) -> torch.Tensor:
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


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, summed over classes, mean over pixels.

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


def affinity_loss(student: torch.Tensor, teacher: torch.Tensor, grid: int = 7) -> torch.Tensor:
    """Pairwise-affinity distillation (Knowledge Adaptation's affinity term, MGD's region term).

    Both maps are average-pooled to ``grid`` x ``grid`` regions; each region's vector is
    L2-normalised and the (grid^2 x grid^2) cosine-affinity matrices are matched with an MSE.
    Comparing self-similarities makes the term independent of channel counts, so it works between
    any two widths, and pooling keeps the O((hw)^2) cost negligible.
    """

    def affinity(x: torch.Tensor) -> torch.Tensor:
        q = F.adaptive_avg_pool2d(x.float(), grid).flatten(2)  # (N, C, grid*grid)
        q = F.normalize(q, dim=1)
        return q.transpose(1, 2) @ q  # (N, grid*grid, grid*grid)

    return F.mse_loss(affinity(student), affinity(teacher.detach()))


def image_kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MGD's image-level term: L1 between globally pooled logits, averaged over batch and classes.

    (MGD sums over batch and classes and compensates with a tiny weight; the mean keeps the scale
    independent of batch size and class count.)
    """
    return (student.float().mean((2, 3)) - teacher.detach().float().mean((2, 3))).abs().mean()
