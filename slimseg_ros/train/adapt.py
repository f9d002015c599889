"""``slimseg adapt``: fit a model to a robot's own camera from unlabelled frames.

1. BN recalibration on the frames (every width; see :mod:`.recalibrate`).
2. Multi-Granularity Distillation on the same frames (:mod:`.mgd`): the recalibrated input model,
   frozen, and a weight average of the adapting model are the two teachers; CutMix-mixed frames
   get their confident pseudo labels (each predicted class also its most confident
   ``class_fraction`` of pixels, so thin classes keep labels), and every width learns from them
   with the SlimSeg loss (CE, stepwise KD, boundary term) plus MGD's region and image terms.
   ``teacher`` puts a stronger network (recalibrated on the same frames) in the input model's
   place.
3. A budget of SGD steps (momentum 0.9; a budget in steps because self-training drifts the
   longer it runs), ``runs`` times from the recalibrated model with seeds ``seed``,
   ``seed + 1``, ...: one run's last weights land above or below recalibration depending on its
   seed, so the result is the runs' weights averaged, with BN statistics re-estimated for the
   average (a model soup; ``runs=1`` and ``keep="average"`` give the earlier recipe: one run's
   weight moving average). The defaults (:class:`AdaptSettings`): docs/data.md;
   why: docs/log/adapt.md.
4. A label-free check (:mod:`.adapt_check`) on frames held back from steps 1-3: each width
   keeps its adapted weights only where they agree better with a reference network (the
   teacher) than the input model and its recalibration do; otherwise the better of those two.
5. A refit (``refit``): what the check chose is made again from every frame, the held-back ones
   too, and composed the same way: the check chose the recipe and how far to follow it.

The result is a new checkpoint (never the input file) whose metadata says what it was adapted on.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader

from ..data.seeding import make_generator, worker_init_fn
from ..data.transforms import TrainTransform
from ..data.unlabeled import SubsetFrames, UnlabeledView
from ..model.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ..model.slimseg import SlimSegNet
from .adapt_check import Decision, ReferenceLabels, agreement, blend, compose, decide, \
    held_back, same_shared
from .adapt_settings import AdaptSettings
from .config import LossConfig, MGDConfig
from .mgd import MGD, MeanTeacher
from .recalibrate import TRAINING_SCALE_RANGE, recalibrate_model
from .step import ExternalTeacher, slimseg_step
from .teacher import Teacher, load_teacher

__all__ = ["AdaptSettings", "AdaptResult", "adapt_model", "adapt_checkpoint"]


@dataclass
class AdaptResult:
    out: Path
    steps: int
    seconds: float
    pseudo_labelled: float  # mean fraction of pixels that got a pseudo label
    runs: int = 1  # independent runs averaged (``steps`` is each run's)
    decision: Decision | None = None  # the label-free check's, None without one
    # "input", "recalibrated", "adapted" (every width adapted, before the check): the states
    # the check chose from, for a caller that scores them (``--eval-bag``)
    candidates: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    check_frames: int = 0
    frames: int = 0  # the frames the written weights were made from
    # the check's choice as it was checked, before the refit on every frame (empty: no refit)
    checked: dict[str, torch.Tensor] = field(default_factory=dict)


def _frame_batches(frames: Any, meta: CheckpointMeta, batch: int, seed: int
                   ) -> Iterator[torch.Tensor]:
    crop = tuple(meta.training.get("crop_size", meta.input_size))
    scale = tuple(meta.training.get("scale_range", TRAINING_SCALE_RANGE))
    if len(frames) < 2 * batch:
        raise ValueError(f"{len(frames)} frames are fewer than one step needs ({2 * batch})")
    crops = UnlabeledView(frames, TrainTransform(crop, scale, meta.mean, meta.std, seed=seed))
    loader = DataLoader(crops, batch_size=2 * batch, shuffle=True, drop_last=True,
                        num_workers=1, worker_init_fn=worker_init_fn,
                        generator=make_generator(seed), persistent_workers=True)
    while True:
        for images, _ in loader:
            yield images


def adapt_model(model: SlimSegNet, meta: CheckpointMeta, frames: Any, settings: AdaptSettings,
                source: str, log: Callable[[str], None] = print
                ) -> tuple[CheckpointMeta, AdaptResult]:
    """Adapt ``model`` in place to ``frames`` (unlabelled); returns metadata saying so."""
    s = settings
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    adapt_idx, check_idx = held_back(len(frames), s.check_fraction)
    every_frame = frames
    check_frames = SubsetFrames(frames, check_idx) if check_idx else None
    frames = SubsetFrames(frames, adapt_idx) if check_idx else frames
    teacher = None
    if s.teacher:  # checked against the model's classes before any work
        teacher = load_teacher(s.teacher, num_classes=meta.config.num_classes, mean=meta.mean,
                               std=meta.std)
    reference = None
    if check_frames is not None:
        reference = _check_reference(s, meta, teacher)
        log(f"holding back {len(check_idx)} of {len(adapt_idx) + len(check_idx)} frames for "
            f"the label-free check")
    candidates = {"input": copy.deepcopy(model.state_dict())}
    t0 = time.monotonic()
    external, start_meta = teacher, meta
    meta, states, teacher, steps, confident = _recalibrate_and_adapt(
        model, meta, frames, s, source, external, log)
    candidates.update(states)
    decision, checked = None, {}
    if check_frames is not None:
        assert reference is not None
        log(f"scoring the candidates on the {len(check_idx)} held-back frames")
        decision = _check(model, meta, candidates, check_frames, reference, teacher, frames, s)
        if s.refit:
            checked = {k: v.clone() for k, v in model.state_dict().items()}
            frames = every_frame
            meta, candidates, refit_steps, refit_confident = _refit(
                model, start_meta, frames, s, source, external, candidates, decision, log)
            if refit_steps:  # else only recalibrated: the recipe's figures are the check's
                steps, confident = refit_steps, refit_confident
    seconds = time.monotonic() - t0
    result = AdaptResult(Path(), steps, seconds, confident, s.runs, decision, candidates,
                         len(check_idx), len(frames), checked)
    training = dict(meta.training)
    training["adapted"] = {"source": source, "frames": len(frames), "steps": steps,
                           "runs": s.runs, "seeds": [s.seed + r for r in range(s.runs)],
                           "refit": bool(checked),
                           "minutes": round(seconds / 60, 1), "confidence": s.confidence,
                           "class_fraction": s.class_fraction,
                           "teacher": s.teacher or "the input model", "distill": s.distill,
                           "teacher_flip": s.teacher_flip,
                           "lr": s.lr, "batch_pairs": s.batch_size,
                           "pseudo_labelled": round(result.pseudo_labelled, 3),
                           "kept": s.keep, "average_decay": s.average_decay,
                           "bn_statistics": "frozen" if s.freeze_bn_statistics else "batch",
                           "params": s.params, "optimizer": s.optimizer,
                           "check": None if decision is None else {
                               **decision.as_dict(), "frames": len(check_idx),
                               "reference": str(reference.path)},
                           "method": "BN recalibration + MGD (frozen input model and the "
                                     "adapting model's weight average as teachers)"
                                     + (f", the average of {s.runs} runs' weights with BN "
                                        "re-estimated" if s.runs > 1 else "")
                                     + (", made again from every frame after the check"
                                        if checked else "")}
    return meta.replace(training=training), result


def _recalibrate_and_adapt(model: SlimSegNet, meta: CheckpointMeta, frames: Any,
                           s: AdaptSettings, source: str, external: Teacher | None,
                           log: Callable[[str], None], adapt: bool = True
                           ) -> tuple[CheckpointMeta, dict[str, dict], Teacher, int, float]:
    """Steps 1-3 on ``frames``, from ``model``'s weights (left holding the last candidate):
    (metadata, {"recalibrated", "adapted"} states, the teacher used, steps per run,
    pseudo-labelled fraction). ``adapt=False`` stops after recalibration."""
    meta, used, _ = recalibrate_model(model, meta, frames, frames=s.recalibrate_frames,
                                      source=source, progress=log)
    log(f"recalibrated BN statistics on {used} frames")
    if external is not None:
        assert external.meta is not None
        recalibrate_model(external.model, external.meta, frames, frames=s.recalibrate_frames)
        log(f"teacher {s.teacher}: recalibrated BN statistics on the same frames")
        teacher = external
    else:
        teacher = Teacher(copy.deepcopy(model))
    recalibrated = copy.deepcopy(model.state_dict())
    states: dict[str, dict] = {"recalibrated": recalibrated}
    if not adapt:
        return meta, states, teacher, 0, 0.0
    seeds = [s.seed + r for r in range(s.runs)]
    kept, steps, confident = [], 0, 0.0
    for seed in seeds:
        if len(seeds) > 1:
            log(f"run {seed - s.seed + 1} of {len(seeds)} (seed {seed})")
        model.load_state_dict(recalibrated)
        steps, run_confident = _adapt_once(model, meta, frames, teacher, s, seed, log)
        confident += run_confident / len(seeds)
        kept.append(copy.deepcopy(model.state_dict()))
    if len(kept) > 1:
        model.load_state_dict(_uniform_average(kept))
        # the averaged convolutions need their own statistics (as after stochastic weight
        # averaging); the averaged running statistics belong to none of the runs' weights
        recalibrate_model(model, meta, frames, frames=s.recalibrate_frames)
        log(f"averaged the {len(kept)} runs' weights and re-estimated BN statistics")
    model.eval()
    states["adapted"] = copy.deepcopy(model.state_dict())
    return meta, states, teacher, steps, confident


def _refit(model: SlimSegNet, meta: CheckpointMeta, frames: Any, s: AdaptSettings, source: str,
           external: Teacher | None, candidates: dict[str, dict], decision: Decision,
           log: Callable[[str], None]) -> tuple[CheckpointMeta, dict[str, dict], int, float]:
    """The candidates ``decision`` chose, made again from every frame (the held-back ones too)
    and composed as it chose them into ``model``; (metadata, candidates, steps, fraction).

    The check chose a recipe and how far to follow it; its frames are then worth more as
    training frames than as evidence already used (as a model is refitted on all the data
    after cross-validation): holding them back cost the adapted soups up to 0.005 mIoU at a
    width (docs/log/adapt.md, "Refit").
    """
    adapt = "adapted" in decision.choice.values()
    log(f"refitting on all {len(frames)} frames: "
        + ("recalibration and adaptation" if adapt else "recalibration"))
    model.load_state_dict(candidates["input"])
    meta, states, _, steps, confident = _recalibrate_and_adapt(model, meta, frames, s, source,
                                                               external, log, adapt=adapt)
    if adapt and decision.blend != 1.0:
        states["adapted"] = _part_of_the_way(model, meta, frames, s, states, decision.blend)
    candidates = {**candidates, **states}
    model.load_state_dict(compose(candidates, decision, model.widths))
    model.eval()
    return meta, candidates, steps, confident


def _part_of_the_way(model: SlimSegNet, meta: CheckpointMeta, frames: Any, s: AdaptSettings,
                     states: dict[str, dict], t: float) -> dict[str, torch.Tensor]:
    """The weights ``t`` of the way from ``states``' recalibrated to its adapted ones, with BN
    statistics re-estimated on ``frames`` for the blended convolutions; left in ``model``."""
    model.load_state_dict(blend(states["recalibrated"], states["adapted"], t))
    recalibrate_model(model, meta, frames, frames=s.recalibrate_frames)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _check_reference(s: AdaptSettings, meta: CheckpointMeta, teacher: Teacher | None
                     ) -> Teacher:
    """The label-free check's reference network (given, the external teacher, or shipped),
    loaded before any work so that a wrong file fails at once; the external teacher itself when
    it is the reference."""
    from ..runtime.loader import DEFAULT_TEACHER_NAME, default_model_path

    path = s.check_reference or s.teacher or default_model_path(DEFAULT_TEACHER_NAME)
    if path is None:
        raise ValueError(f"the label-free check needs a reference network and "
                         f"{DEFAULT_TEACHER_NAME} is not installed: give --check-reference "
                         f"(or --teacher), or --check-fraction 0 to keep every adapted width")
    if teacher is not None and teacher.path is not None \
            and Path(teacher.path).resolve() == Path(path).resolve():
        return teacher
    return load_teacher(path, num_classes=meta.config.num_classes, mean=meta.mean, std=meta.std)


def _check(model: SlimSegNet, meta: CheckpointMeta, candidates: dict[str, dict],
           check_frames: Any, reference: Teacher, teacher: Teacher, frames: Any,
           s: AdaptSettings) -> Decision:
    """Score the candidates on the held-back frames, load the chosen mix into ``model``."""
    assert reference.meta is not None
    if reference is not teacher:  # the external teacher was recalibrated already
        recalibrate_model(reference.model, reference.meta, frames, frames=s.recalibrate_frames)
    labels = ReferenceLabels(check_frames, reference.model, reference.meta)
    scores = {}
    for name, state in candidates.items():
        model.load_state_dict(state)
        scores[name] = agreement(model, meta, labels)
    shares = same_shared(candidates["input"], candidates["adapted"])
    chosen, failed = dict(candidates), []
    for t in s.check_blends:
        if t != 1.0:
            chosen["adapted"] = _part_of_the_way(model, meta, frames, s, candidates, t)
            scores["adapted"] = agreement(model, meta, labels)
        decision = decide(scores, shares, s.check_margin, blend=t)
        if shares or "adapted" in decision.choice.values():
            break
        failed.append(f"{t:g} (agreement " + " / ".join(
            f"{scores['adapted'][w]:.4f}" for w in sorted(scores["adapted"])) + ")")
    if failed:
        kept = (f"kept {decision.blend:g} of the way" if "adapted" in decision.choice.values()
                else "kept the previous weights")
        decision.notes.append(f"the weights {', '.join(failed)} of the way to the adapted ones "
                              f"failed the check at a width; {kept}")
    model.load_state_dict(compose(chosen, decision, model.widths))
    model.eval()
    return decision


def _adapt_once(model: SlimSegNet, meta: CheckpointMeta, frames: Any, teacher: Teacher,
                s: AdaptSettings, seed: int, log: Callable[[str], None]) -> tuple[int, float]:
    """One run of MGD steps on ``model`` (in place); (steps, mean pseudo-labelled fraction)."""
    torch.manual_seed(seed)
    mgd_cfg = replace(MGDConfig(), confidence=s.confidence, class_fraction=s.class_fraction,
                      teacher_flip=s.teacher_flip, pixel_labeled_weight=0.0)
    # No ramp: the average starts at the recalibrated model, which is already good.
    mean = MeanTeacher(model, s.average_decay, ramp=False)
    mgd = MGD(mgd_cfg, teacher, mean, meta.ignore_index)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if s.freeze_bn_statistics:
        for module in norms:
            module.eval()
    learning = [p for m in norms for p in m.parameters()] if s.params == "norm" else list(
        model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in learning:
        p.requires_grad_(True)
    opt = (torch.optim.AdamW(learning, lr=s.lr, weight_decay=1e-4) if s.optimizer == "adamw"
           else torch.optim.SGD(learning, lr=s.lr, momentum=0.9, weight_decay=1e-4))
    batches = _frame_batches(frames, meta, s.batch_size, seed)
    rng = torch.Generator().manual_seed(seed)
    loss_cfg = LossConfig()  # SlimSeg: stepwise KD, boundary-guided term
    budget = s.minutes * 60 / s.runs  # the runs share the wall-clock budget
    t0 = time.monotonic()
    step, confident, total = 0, 0.0, float("nan")
    while True:
        # how much of the budget is spent: steps or wall clock, whichever runs out first
        progress = max(step / s.steps if s.steps else 0.0,
                       (time.monotonic() - t0) / budget if budget else 0.0)
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = s.lr * min(1.0, (step + 1) / 10) * (1 - progress) ** 0.9
        u0, u1 = next(batches).contiguous(memory_format=torch.channels_last).chunk(2)
        mixed = mgd.mixed_batch(u0, u1, rng)
        opt.zero_grad(set_to_none=True)
        report = slimseg_step(model, mixed.images, mixed.labels, model.widths, loss_cfg,
                              ignore_index=meta.ignore_index,
                              extra_terms=mgd.unlabeled_terms(mixed),
                              external=ExternalTeacher(teacher, outputs=mixed.external_outputs)
                              if s.distill else None)
        total = sum(r["total"] for r in report.values())
        if not math.isfinite(total):
            raise FloatingPointError(f"non-finite loss at adaptation step {step}; lower --lr")
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        mean.update(model, step)
        step += 1
        confident += mixed.confident
        if step % 20 == 0:
            log(f"step {step}: loss {total:.3f}, pseudo-labelled {mixed.confident:.0%} of pixels, "
                f"{time.monotonic() - t0:.0f} s")
    for p in model.parameters():
        p.requires_grad_(True)
    if s.keep == "average":
        model.load_state_dict(mean.average.model.state_dict())
    return step, confident / max(1, step)


def _uniform_average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor; integer buffers (BN's counters) from the first.
    A tensor that every run left alone stays bit for bit (the mean of equal floats can differ in
    the last bit, and the check tells untouched convolutions by equality)."""
    return {k: torch.stack([st[k] for st in states]).mean(0)
            if v.is_floating_point() and not all(torch.equal(st[k], v) for st in states[1:])
            else v for k, v in states[0].items()}


def adapt_checkpoint(checkpoint: str | Path, frames: Any, out: str | Path,
                     settings: AdaptSettings, source: str,
                     log: Callable[[str], None] = print) -> AdaptResult:
    """Load ``checkpoint``, adapt it to ``frames``, write ``out`` (which must be another file)."""
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise ValueError("--out must differ from --checkpoint: keep the original model")
    model, meta = load_checkpoint(checkpoint)
    meta = meta.replace(training={**meta.training, "adapted_from": str(checkpoint)})
    meta, result = adapt_model(model, meta, frames, settings, source, log)
    result.out = save_checkpoint(out, model, meta)
    return result
