"""One SlimSeg training step: every width, widest first, backward per width, one optimizer step.

Running the widths in descending order lets each narrower width distil from the detached logits
its wider neighbour just produced (stepwise downward KD) without an extra forward pass, and peak
activation memory stays that of the widest width because each backward runs right away.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

import torch
import torch.nn.functional as F

from ..model.slimseg import SlimSegNet
from .config import LossConfig
from .ka import KnowledgeAdaptation
from .losses import (
    boundary_guided_loss, boundary_mask, ce_loss, kd_loss, ohem_ce_loss,
)

from .teacher import Teacher, TeacherOutputs

__all__ = ["slimseg_step", "width_loss", "ExternalTeacher", "ExtraTerms"]

# f(width, logits at label size, decoder features) -> weighted extra loss terms of that width
ExtraTerms = Callable[[float, torch.Tensor, torch.Tensor], "dict[str, torch.Tensor]"]


@dataclass
class ExternalTeacher:
    """A frozen teacher for the widest width, and optionally Knowledge Adaptation's modules.

    ``outputs``: the teacher's outputs on this step's images when the caller already has them
    (MGD runs the teacher on the mixed frames for its image term), so it does not run twice.
    """

    teacher: Teacher
    ka: KnowledgeAdaptation | None = None
    outputs: TeacherOutputs | None = None


def width_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None,
               mask: torch.Tensor | None, cfg: LossConfig,
               ignore_index: int = 255) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one width: CE + KD from ``teacher`` (if any) + boundary-guided term.

    """
    if cfg.ce == "ohem":
        ce = ohem_ce_loss(logits, labels, cfg.ohem_thresh, cfg.ohem_min_kept, ignore_index)
    else:
        ce = ce_loss(logits, labels, ignore_index)
    total, parts = ce, {"ce": float(ce.detach())}
    if teacher is not None and cfg.kd_weight > 0.0:
        kd = kd_loss(logits, teacher, cfg.temperature)
        total = total + cfg.kd_weight * kd
        parts["kd"] = float(kd.detach())
    if mask is not None and cfg.boundary_weight > 0.0:
        bd = boundary_guided_loss(
            logits, labels, mask,
            teacher=teacher if cfg.boundary_kd else None,
            temperature=cfg.temperature, kd_weight=cfg.kd_weight, ignore_index=ignore_index,
        )
        total = total + cfg.boundary_weight * bd
        parts["boundary"] = float(bd.detach())
    return total, parts


def slimseg_step(
    model: SlimSegNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    widths: Sequence[float],
    cfg: LossConfig,
    *,
    ignore_index: int = 255,
    backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward(),
    autocast: Callable[[], ContextManager[object]] | None = None,
    external: ExternalTeacher | None = None,
    extra_terms: ExtraTerms | None = None,
    loss_scale: float = 1.0,
) -> dict[float, dict[str, float]]:
    """Forward + backward every width in ``widths`` (gradients accumulate; the caller steps).

    Args:
        model: the slimmable network (in train mode).
        images: (N, 3, H, W) normalised floats; labels: (N, H, W) int64 with ``ignore_index``.
        widths: the widths to train this step (any order; run widest first).
        cfg: loss configuration (KD topology, weights, temperature, boundary kernel).
        backward: how to backpropagate one width's loss (a GradScaler's ``scale(loss).backward``
            under AMP).
        autocast: a context-manager factory for the forward passes (AMP), or None.
        external: a frozen teacher run once per step: KD teacher of the widest width, and
            with Knowledge Adaptation the target of the KA terms (``ka_adapt``, ``ka_affinity``).

    Returns:
        Per width, the loss parts as floats (``total``, ``ce``, ``kd``, ``boundary``, ...).
    """
    order = sorted(widths, reverse=True)
    weights = dict(zip(model.widths, cfg.width_weights)) if cfg.width_weights else {}
    mask = None
    if cfg.boundary_weight > 0.0:
        mask = boundary_mask(labels, cfg.boundary_kernel, ignore_index)
    widest_logits: torch.Tensor | None = None
    previous_logits: torch.Tensor | None = None
    external_logits = teacher_latent = wider_latent = None
    ka = external.ka if external is not None else None
    if external is not None:
        out = external.outputs if external.outputs is not None else external.teacher(images)
        external_logits = out.logits_at(labels.shape[-2:])
        if ka is not None:
            teacher_latent = ka.teacher_latent(out.features)
    report: dict[float, dict[str, float]] = {}
    previous_width = model.width
    try:
        for w in order:
            model.set_width(w)
            features = decoded = None
            with autocast() if autocast is not None else contextlib.nullcontext():
                if (ka is not None and ka.applies_to(w)) or extra_terms is not None:
                    logits, features, decoded = model.forward_parts(images)
                else:
                    logits = model(images)
                logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                       align_corners=False)
            logits = logits.float()
            teacher = None
            if w == order[0] or cfg.kd == "teacher":
                teacher = external_logits
            elif cfg.kd == "stepwise":
                teacher = previous_logits
            elif cfg.kd == "inplace":
                teacher = widest_logits
            loss, parts = width_loss(logits, labels, teacher, mask, cfg, ignore_index)
            if ka is not None and ka.applies_to(w):
                adapt, affinity, wider_latent = ka.terms(w, features.float(), teacher_latent,
                                                         wider_latent)
                loss = loss + cfg.ka_adapt_weight * adapt + cfg.ka_affinity_weight * affinity
                parts["ka_adapt"] = float(adapt.detach())
                parts["ka_affinity"] = float(affinity.detach())
            loss = loss * loss_scale
            if extra_terms is not None:
                for name, term in extra_terms(w, logits, decoded.float()).items():
                    loss = loss + term
                    parts[name] = float(term.detach())
            loss = loss * weights.get(w, 1.0)
            backward(loss)
            parts["total"] = float(loss.detach())
            report[w] = parts
            previous_logits = logits.detach()
            if widest_logits is None:
                widest_logits = previous_logits
    finally:
        model.set_width(previous_width)
    return report

