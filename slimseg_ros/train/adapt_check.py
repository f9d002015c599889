"""Whether adaptation helped each width, judged without labels, and the model that follows.

``slimseg adapt`` trains on pseudo labels, and self-training can make a width worse without
anyone seeing it (docs/log/adapt.md: longer budgets drift below recalibration). So the command
holds back some of the robot's frames, never recalibrates or adapts on them, and scores every
candidate there against a *reference* network's predictions (the agreement mIoU between the two
label maps): the input model, the input model with recalibrated BN statistics, and the adapted
model, each width alone. A width keeps its adapted weights only where they agree with the
reference better than the best previous candidate does.

The reference is a different, stronger network (the teacher) with its BN statistics
recalibrated on the same adaptation frames: a model compared with its own earlier self would
always prefer that self. Frames are held back in blocks of consecutive frames, so a check frame
is not the near-duplicate neighbour of a frame adaptation trained on.

Widths share their convolutions; each owns only its BN layers. So the choice is exact per width
between candidates that share the convolutions (the input model and its recalibration always
do; so does the adapted model when only BN parameters learned). When the adapted convolutions
differ, they are kept only if every width improved. Otherwise the weights part of the way from
the recalibrated to the adapted ones (``blend``: halfway, a quarter; BN statistics re-estimated
for them) are tried the same way, as robust fine-tuning interpolates (WiSE-FT): self-training
that overshoots at one width has often helped every width on the way. When no blend improves
every width, every width keeps the previous convolutions (with the better BN of the two previous
candidates), and :class:`Decision` says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data.base import SegmentationDataset
from ..model.checkpoint import CheckpointMeta
from ..model.slimseg import SlimSegNet
from .validate import torch_engine, validate

__all__ = ["CANDIDATES", "Decision", "ReferenceLabels", "agreement", "blend", "compose",
           "decide", "held_back", "same_shared", "width_owned"]

CANDIDATES = ("input", "recalibrated", "adapted")
"""The candidates per width, in the order that wins ties (the earlier, the safer)."""

_WIDTH_BN = re.compile(r"\.bn\.(\d+)\.")  # SlimConv.bn[i]: width i's own BatchNorm


def held_back(count: int, fraction: float, block: int = 10) -> tuple[list[int], list[int]]:
    """(adaptation indices, check indices) of ``count`` frames in recording order.

    Every ``round(1 / fraction)``-th block of ``block`` consecutive frames is held back for the
    check; ``fraction`` 0 holds back nothing. Raises ``ValueError`` when either side would hold
    fewer than ``block`` frames (too few frames for a check: lower the fraction or set it 0).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-back fraction must be in [0, 1), got {fraction:g}")
    if fraction == 0.0:
        return list(range(count)), []
    period = max(2, round(1.0 / fraction))
    check = [i for i in range(count) if (i // block) % period == period - 1]
    rest = [i for i in range(count) if (i // block) % period != period - 1]
    if len(check) < block or len(rest) < block:
        raise ValueError(f"{count} frames are too few to hold back {fraction:.0%} in blocks of "
                         f"{block} for the label-free check; give more frames or "
                         f"--check-fraction 0")
    return rest, check


class ReferenceLabels(SegmentationDataset):
    """Frames labelled by a reference network's predictions (at its widest width)."""

    def __init__(self, frames: SegmentationDataset, reference: SlimSegNet,
                 meta: CheckpointMeta, device: str = "cpu") -> None:
        self.class_spec = frames.class_spec
        self.transform = None
        self.frames = frames
        width = reference.widths[-1]
        engine = torch_engine(reference, meta, (width,), device)
        self.labels = [engine.infer(frames.load(i)[0], width).astype(np.uint8)
                       for i in range(len(frames))]

    def __len__(self) -> int:
        return len(self.frames)

    def name(self, index: int) -> str:
        return self.frames.name(index)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.frames.load(index)[0], self.labels[self._check_index(index)]


def agreement(model: SlimSegNet, meta: CheckpointMeta, reference: ReferenceLabels,
              device: str = "cpu") -> dict[float, float]:
    """Each width's mIoU against the reference's label maps (1.0 = the same predictions)."""
    scores = validate(model, reference, model.widths, meta, device=device)
    return {float(w): float(s["miou"]) for w, s in scores.items()}


def width_owned(state: Mapping[str, torch.Tensor], width_index: int) -> list[str]:
    """The keys of ``state`` that belong to one width alone (its BN layers)."""
    return [k for k in state if (m := _WIDTH_BN.search(k)) and int(m.group(1)) == width_index]


def _shared(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not _WIDTH_BN.search(k)}


def same_shared(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether two states of one network hold the same tensors outside the widths' BN."""
    sa, sb = _shared(a), _shared(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@dataclass(frozen=True)
class Decision:
    """Which candidate's weights each width keeps, the scores behind it, and why."""

    choice: dict[float, str]
    scores: dict[str, dict[float, float]]
    margin: float
    shares_convolutions: bool  # the adapted model's convolutions are the input model's
    notes: list[str] = field(default_factory=list)
    blend: float = 1.0  # how far from the recalibrated weights towards the adapted ones

    def lines(self) -> list[str]:
        """One line per width: the scores and the candidate kept; then the notes."""
        out = []
        adapted = "adapted" if self.blend == 1.0 else f"adapted x{self.blend:g}"
        for w, kept in self.choice.items():
            row = ", ".join(f"{adapted if c == 'adapted' else c} {self.scores[c][w]:.4f}"
                            for c in CANDIDATES)
            out.append(f"width {w:g}: agreement {row}: kept "
                       f"{adapted if kept == 'adapted' else kept}")
        return out + self.notes

    def as_dict(self) -> dict[str, Any]:
        return {"choice": {str(w): c for w, c in self.choice.items()},
                "agreement": {c: {str(w): round(v, 4) for w, v in s.items()}
                              for c, s in self.scores.items()},
                "margin": self.margin, "shares_convolutions": self.shares_convolutions,
                "blend": self.blend, "notes": self.notes}


def _improved(s: Mapping[str, Mapping[float, float]], width: float, margin: float) -> bool:
    return s["adapted"][width] > max(s["input"][width], s["recalibrated"][width]) + margin


def decide(scores: Mapping[str, Mapping[float, float]], shares_convolutions: bool,
           margin: float = 0.0, blend: float = 1.0) -> Decision:
    """Each width's candidate from the agreement ``scores`` of :data:`CANDIDATES` per width.

    A width keeps the adapted weights where they beat both previous candidates by more than
    ``margin``; the previous candidates (which always share convolutions) are chosen per width,
    the earlier on a tie. When the adapted convolutions differ from the input model's, they are
    kept only if every width improved.
    """
    missing = [c for c in CANDIDATES if c not in scores]
    if missing:
        raise ValueError(f"no agreement scores for {', '.join(missing)}")
    s = {c: {float(w): float(v) for w, v in scores[c].items()} for c in CANDIDATES}
    widths = sorted(s["input"])
    previous = {w: max(("input", "recalibrated"), key=lambda c, w=w: (s[c][w], c == "input"))
                for w in widths}
    better = [w for w in widths if _improved(s, w, margin)]
    notes = []
    if shares_convolutions:
        choice = {w: "adapted" if w in better else previous[w] for w in widths}
    elif len(better) == len(widths):
        choice = {w: "adapted" for w in widths}
    else:
        choice = dict(previous)
        worse = [f"{w:g}" for w in widths if w not in better]
        notes.append(f"adapted weights rejected: no better than before at width "
                     f"{', '.join(worse)}; the widths share convolutions, so every width keeps "
                     f"the previous ones" + (f" (widths {', '.join(f'{w:g}' for w in better)} "
                                             f"scored higher adapted)" if better else ""))
    return Decision(choice, s, margin, shares_convolutions, notes, blend)


def blend(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor], t: float
          ) -> dict[str, torch.Tensor]:
    """``start + t * (end - start)`` for floating-point tensors; integer buffers from ``end``."""
    return {k: torch.lerp(start[k], v, t) if v.is_floating_point() else v.clone()
            for k, v in end.items()}


def compose(states: Mapping[str, Mapping[str, torch.Tensor]], decision: Decision,
            widths: Sequence[float]) -> dict[str, torch.Tensor]:
    """The state in which width ``widths[i]`` holds the BN of ``decision.choice[widths[i]]`` and
    the shared tensors come from the candidates chosen (they agree on them by construction)."""
    chosen = set(decision.choice.values())
    base_name = "adapted" if "adapted" in chosen else "recalibrated"
    base = states[base_name]
    if not all(same_shared(base, states[c]) for c in chosen):
        raise ValueError(f"candidates {sorted(chosen)} differ outside the widths' BN layers; "
                         f"they cannot be mixed per width")
    out = {k: v.clone() for k, v in base.items()}
    for i, width in enumerate(widths):
        source = states[decision.choice[float(width)]]
        for key in width_owned(base, i):
            out[key] = source[key].clone()
    return out
