"""The training loop: data, optimiser, schedule, AMP, data parallelism, validation, checkpoints.

Model-agnostic apart from :func:`~slimseg_ros.train.step.slimseg_step`, which it calls once per
batch. Multi-GPU runs start through ``torchrun``: every process trains on its own shard and the
gradients are averaged across processes after all widths have back-propagated (one all-reduce per
step instead of one per width, and no DDP bookkeeping about the per-width BN parameters that a
given width leaves unused).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..data import TrainTransform, build_dataset, make_generator, seed_everything, worker_init_fn
from ..data.unlabeled import SubsetFrames, labeled_partition, open_unlabeled
from ..model.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ..model.config import width_key
from ..model.imagenet import load_imagenet_encoder
from ..model.slimseg import SlimSegNet
from .config import TrainConfig
from .ema import WeightAverage
from .ka import KnowledgeAdaptation, load_autoencoder, save_autoencoder, train_autoencoder
from .mgd import MGD, MeanTeacher
from .step import ExternalTeacher, slimseg_step
from .stop import StopSignals
from .teacher import load_teacher
from .validate import validate

__all__ = ["train", "TrainResult", "resolve_device", "poly_lr"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path
    steps: int
    history: list[dict[str, Any]]
    losses: list[float]  # summed loss over widths of every step run in this call
    stopped_by: str | None = None  # "SIGINT"/"SIGTERM" when a signal ended the run early
    state_path: Path | None = None  # train_state.pt: the same command resumes from it


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    return device


def poly_lr(step: int, total: int, base: float, power: float, warmup: int,
            time_fraction: float = 0.0) -> float:
    """Linear warm-up then polynomial decay to 0 at ``total`` steps.

    With a wall-clock budget, ``time_fraction`` (elapsed / budget) advances the decay too, so a
    run that hits its time limit before its step count still ends on a fully decayed schedule.
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return base * (1.0 - progress) ** power


def _time_fraction(cfg: TrainConfig, elapsed_s: float) -> float:
    return elapsed_s / (cfg.time_limit_min * 60) if cfg.time_limit_min else 0.0


def _param_groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    # no decay on BN affine parameters and biases (1-D tensors), as usual for conv nets
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _batches(loader: DataLoader, sampler: DistributedSampler | None) -> Iterator[Any]:
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _load_initial_weights(model: SlimSegNet, cfg: TrainConfig, transform: TrainTransform,
                          announce: bool) -> None:
    """Copy ``cfg.init_checkpoint``'s weights into ``model``; it must be the same network."""
    init, init_meta = load_checkpoint(cfg.init_checkpoint)
    if init.config != model.config:
        raise ValueError(f"init_checkpoint {cfg.init_checkpoint} is a different network "
                         f"({init.config}) from model ({model.config}); set model.* to match")
    if tuple(init_meta.mean) != tuple(transform.mean) or tuple(init_meta.std) != tuple(
            transform.std):
        raise ValueError(f"init_checkpoint {cfg.init_checkpoint} normalises with mean "
                         f"{init_meta.mean} / std {init_meta.std}, training with "
                         f"{transform.mean} / {transform.std}")
    model.load_state_dict(init.state_dict())
    if announce:
        logger.info("starting from the weights of %s", cfg.init_checkpoint)


@dataclass
class _Run:
    """Everything a run builds before its first step; the loop only reads it."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    out: Path
    loader: DataLoader
    sampler: DistributedSampler | None
    val_set: Any
    meta: CheckpointMeta
    model: SlimSegNet
    external: ExternalTeacher | None
    params: list[torch.nn.Parameter]  # the student's, plus KA's training-only adapters
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: WeightAverage | None
    mgd: MGD | None
    unlabeled_batches: Iterator[torch.Tensor] | None
    resumable: dict[str, torch.nn.Module]  # restored by name from train_state.pt
    cutmix_rng: torch.Generator

    @property
    def state_path(self) -> Path:
        return self.out / "train_state.pt"


@dataclass
class _Progress:
    """What a resume restores and each step advances."""

    step: int = 0
    best_score: float = -1.0
    best_path: Path | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    spent_s: float = 0.0  # the run's time in earlier sessions: a resumed run keeps its budget
    losses: list[float] = dataclasses.field(default_factory=list)
    terms: "LossTerms" = dataclasses.field(default_factory=lambda: LossTerms())


def _optimizer(o: Any, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if o.optimizer == "adamw":
        return torch.optim.AdamW(_param_groups(params, o.weight_decay), lr=o.lr)
    return torch.optim.SGD(_param_groups(params, o.weight_decay), lr=o.lr,
                           momentum=o.momentum, nesterov=True)


def _build(cfg: TrainConfig) -> _Run:
    rank, world = _distributed()
    seed_everything(cfg.seed + rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    transform = TrainTransform(d.crop_size, d.scale_range, seed=cfg.seed + rank,
                               **cfg.augment.transform_kwargs())
    train_set, unlabeled_set = _training_sets(cfg, transform, out, rank)
    val_set = build_dataset(d.dataset, d.root, d.val_split, **d.options)
    if train_set.num_classes != cfg.model.num_classes:
        raise ValueError(f"the dataset has {train_set.num_classes} classes but model.num_classes "
                         f"is {cfg.model.num_classes}")
    sampler = DistributedSampler(train_set, world, rank, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(
        train_set, batch_size=d.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=d.workers, drop_last=True, worker_init_fn=worker_init_fn,
        generator=make_generator(cfg.seed), persistent_workers=d.workers > 0,
        pin_memory=device.type == "cuda",
    )
    model = SlimSegNet(cfg.model)
    fresh = not (out / "train_state.pt").is_file()
    if cfg.init_checkpoint and fresh:
        _load_initial_weights(model, cfg, transform, announce=rank == 0)
    if cfg.encoder_init and fresh:
        units = load_imagenet_encoder(model, cfg.encoder_init)
        if rank == 0:
            logger.info("encoder: %d layers from the ImageNet weights in %s", units,
                        cfg.encoder_init)
    # channels-last runs the depthwise/pointwise convs noticeably faster on CPUs (and on GPUs
    # with tensor cores); measured in docs/log/benchmarks.md
    model = model.to(device, memory_format=torch.channels_last).train()
    external = _external_teacher(cfg, model, transform, device, out, rank == 0)
    ka = external.ka if external is not None else None
    if world > 1:  # identical starting weights (and one autoencoder, same adapters) everywhere
        for module in (m for m in (model, ka) if m is not None):
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, 0)
    params = list(model.parameters())
    if ka is not None:
        params += [p for p in ka.parameters() if p.requires_grad]
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    mgd, unlabeled_batches = None, None
    if unlabeled_set is not None:
        mgd = _mgd(cfg, model, external, train_set.ignore_index)
        unlabeled_batches = _unlabeled_batches(cfg, unlabeled_set, rank, world)
    resumable: dict[str, torch.nn.Module] = {"model": model}
    for name, module in (("ema", ema.model if ema else None), ("ka", ka),
                         ("mgd_mean_teacher", mgd.mean.model if mgd and mgd.mean else None)):
        if module is not None:
            resumable[name] = module
    spec = train_set.class_spec
    meta = CheckpointMeta(config=cfg.model, class_names=spec.names, palette=spec.palette,
                          input_size=d.val_size, mean=transform.mean, std=transform.std,
                          ignore_index=spec.ignore_index)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    return _Run(cfg, rank, world, device, out, loader, sampler, val_set, meta, model, external,
                params, _optimizer(cfg.optim, params), scaler, ema, mgd, unlabeled_batches,
                resumable, torch.Generator().manual_seed(cfg.seed + rank))


def _resume(run: _Run) -> _Progress:
    """The progress saved in ``train_state.pt`` (with the modules' and optimiser's state)."""
    progress = _Progress()
    if (run.out / "best.safetensors").is_file():
        progress.best_path = run.out / "best.safetensors"
    path = run.state_path
    if not path.is_file():
        return progress
    state = torch.load(path, map_location=run.device, weights_only=True)
    for name, module in run.resumable.items():
        if name not in state:
            raise ValueError(f"{path} has no {name!r} state: it was written by a run "
                             f"with other settings; use another out directory")
        module.load_state_dict(state[name])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    progress.step, progress.best_score = int(state["step"]), float(state["best_score"])
    progress.spent_s = float(state.get("elapsed_s", 0.0))  # absent in states saved before
    history = run.out / "history.json"
    progress.history = json.loads(history.read_text()) if history.is_file() else []
    if run.rank == 0:
        logger.info("resuming from step %d in %s", progress.step, run.out)
    return progress


def _train_step(run: _Run, step: int, images: torch.Tensor, labels: torch.Tensor,
                lr: float) -> dict[float, dict[str, float]]:
    """One optimiser step over every width (and, with MGD, the unlabelled batch); its losses."""
    cfg, device = run.cfg, run.device
    images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
    labels = labels.to(device, non_blocking=True)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    step_args = {"widths": cfg.widths_to_train, "cfg": cfg.loss,
                 "ignore_index": run.meta.ignore_index,
                 "backward": lambda loss: run.scaler.scale(loss).backward(),
                 "autocast": ((lambda: torch.autocast("cuda", dtype=torch.float16))
                              if run.scaler.is_enabled() else None)}
    mgd = run.mgd if run.mgd is not None and step >= cfg.mgd.start_step else None
    labeled_terms = None
    if mgd is not None and cfg.mgd.pixel_labeled_weight > 0:
        labeled_terms = mgd.labeled_terms(mgd.labeled_targets(images))
    report = slimseg_step(run.model, images, labels, external=run.external,
                          extra_terms=labeled_terms, **step_args)
    if mgd is not None:
        u0, u1 = next(run.unlabeled_batches).to(device, memory_format=torch.channels_last
                                                ).chunk(2)
        mixed = mgd.mixed_batch(u0, u1, run.cutmix_rng)
        unlabeled = slimseg_step(run.model, mixed.images, mixed.labels,
                                 extra_terms=mgd.unlabeled_terms(mixed),
                                 loss_scale=cfg.mgd.pixel_weight, **step_args)
        for w, parts in unlabeled.items():
            report[w].update({f"u_{k}": v for k, v in parts.items() if k != "total"})
            report[w]["total"] += parts["total"]
        report[max(report)]["u_pseudo_labelled"] = mixed.confident
    run.scaler.unscale_(run.optimizer)
    _average_gradients(run.params, run.world)
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.params, cfg.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    for average in (run.ema, run.mgd.mean if run.mgd is not None else None):
        if average is not None:
            average.update(run.model, step)
    return report


def _evaluate_and_save(run: _Run, progress: _Progress, writer: Any, elapsed_s: float) -> None:
    cfg, step = run.cfg, progress.step
    scored = run.model if run.ema is None else run.ema.model  # the weights validated and saved
    run.model.eval()
    res = validate(scored, run.val_set, cfg.widths_to_train, run.meta,
                   max_images=cfg.val_images, device=str(run.device))
    run.model.train()
    score = sum(r["miou"] for r in res.values()) / len(res)
    entry = {"step": step, "mean_miou": score, "train_loss": progress.terms.means(),
             "widths": {w: {k: v for k, v in r.items() if k != "per_class_iou"}
                        for w, r in res.items()}}
    progress.history.append(entry)
    if writer is not None:
        for w, r in res.items():
            writer.add_scalar(f"val/miou_w{w}", r["miou"], step)
            if r["boundary_f1"] is not None:  # None when no image had a boundary
                writer.add_scalar(f"val/boundary_f1_w{w}", r["boundary_f1"], step)
    meta = run.meta.replace(training=_summary(cfg, step, res, elapsed_s))
    dtype = torch.float16 if cfg.save_fp16 else None
    save_checkpoint(run.out / "last.safetensors", scored, meta, dtype)
    if score > progress.best_score:
        progress.best_score = score
        progress.best_path = save_checkpoint(run.out / "best.safetensors", scored, meta, dtype)
    (run.out / "history.json").write_text(json.dumps(progress.history, indent=2))
    if entry["train_loss"]:
        logger.info("step %d train loss terms: %s", step, progress.terms.describe())
    progress.terms.reset()
    logger.info("step %d: %s", step, ", ".join(
        f"w{w} mIoU {r['miou']:.3f} bF1 {r['boundary_f1'] or float('nan'):.3f}"
        for w, r in res.items()))


def _log_step(writer: Any, bar: Any, step: int, report: dict[float, dict[str, float]],
              lr: float, log_every: int) -> None:
    total = sum(r["total"] for r in report.values())
    if bar is not None:
        # postfix first and without its own redraw, so the bar's redraw interval holds (a
        # redraw per step floods a log file)
        bar.set_postfix(loss=f"{total:.3f}", lr=f"{lr:.2e}", refresh=False)
        bar.update(1)
    if writer is not None and step % log_every == 0:
        writer.add_scalar("train/lr", lr, step)
        for w, parts in report.items():
            for name, value in parts.items():
                writer.add_scalar(f"train/{name}_w{w:g}", value, step)


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Run ``cfg`` to completion (or its time limit); resumes from ``cfg.out`` when state exists.

    Progress goes to the ``slimseg_ros.train`` logger (``slimseg train`` prints it).
    """
    run = _build(cfg)
    p = _resume(run)
    writer = bar = None
    if run.rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run.out / "tensorboard"))
        (run.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if progress:
            from ..progress import progress_bar
            bar = progress_bar(total=cfg.steps, initial=p.step, desc="train", unit="step",
                               dynamic_ncols=True)
    t0 = time.monotonic() - p.spent_s  # elapsed() counts the earlier sessions of a resume
    elapsed = lambda: time.monotonic() - t0  # noqa: E731
    save = lambda: _save_state(run.state_path, run.resumable, run.optimizer,  # noqa: E731
                               run.scaler, p.step, p.best_score, elapsed())
    batches = _batches(run.loader, run.sampler)
    o = cfg.optim
    try:
        with StopSignals() as stop:
            while p.step < cfg.steps:
                if cfg.time_limit_min and elapsed() > cfg.time_limit_min * 60:
                    logger.info("time limit of %s min reached at step %d", cfg.time_limit_min,
                                p.step)
                    break
                lr = poly_lr(p.step, cfg.steps, o.lr, o.poly_power, o.warmup_steps,
                             time_fraction=_time_fraction(cfg, elapsed()))
                report = _train_step(run, p.step, *next(batches), lr)
                p.step += 1
                total = sum(r["total"] for r in report.values())
                p.losses.append(total)
                p.terms.add(report)
                if not math.isfinite(total):
                    raise FloatingPointError(f"non-finite loss {total} at step {p.step}; "
                                             "lower optim.lr")
                if run.rank == 0:
                    _log_step(writer, bar, p.step, report, lr, cfg.log_every)
                    if cfg.val_every and p.step % cfg.val_every == 0 and p.step < cfg.steps:
                        _evaluate_and_save(run, p, writer, elapsed())
                    if p.step % cfg.checkpoint_every == 0:
                        save()
                if stop.requested(run.world, run.device):
                    break
            if run.rank == 0:
                if stop.signum is None:
                    _evaluate_and_save(run, p, writer, elapsed())
                save()
            if run.world > 1:
                # every rank leaves together: one that tears its process group down while
                # rank 0 is still writing the checkpoint can abort in gloo's shutdown
                dist.barrier()
    finally:
        for closing in (bar, writer):
            if closing is not None:
                closing.close()
        if run.world > 1:
            dist.destroy_process_group()
    return TrainResult(run.out, p.best_path, run.out / "last.safetensors", p.step, p.history,
                       p.losses, stop.name or None, run.state_path)


def _training_sets(cfg: TrainConfig, transform: TrainTransform, out: Path, rank: int
                   ) -> tuple[Any, Any]:
    """(labelled training set, unlabelled set or None) as ``cfg.data`` asks.

    With ``labeled_fraction < 1`` only a fixed random part of the frames keeps its labels (the
    partition file makes it the same in every run); ``unlabeled`` adds that part's remainder,
    a bag or an image folder as unlabelled frames, each with its own augmentation stream.
    """
    d = cfg.data
    if d.labeled_fraction >= 1.0:
        train_set = build_dataset(d.dataset, d.root, d.train_split, transform=transform,
                                  **d.options)
        unlabeled_idx: list[int] = []
    else:
        full = build_dataset(d.dataset, d.root, d.train_split, **d.options)
        partition = Path(d.partition) if d.partition else out / "partition.json"
        labeled_idx, unlabeled_idx = labeled_partition(
            full, d.labeled_fraction, d.partition_seed, partition,
            describe={"dataset": d.dataset, "root": str(d.root), "split": d.train_split,
                      "options": d.options})
        train_set = SubsetFrames(full, labeled_idx, transform=transform)
        if rank == 0:
            logger.info("labelled: %d of %d frames (%s)", len(labeled_idx), len(full),
                        partition)
    if not d.unlabeled:
        return train_set, None
    u_transform = TrainTransform(d.crop_size, d.scale_range, seed=cfg.seed + rank + 20_011,
                                 **cfg.augment.transform_kwargs())
    if d.unlabeled == "partition":
        unlabeled = SubsetFrames(train_set.base, unlabeled_idx, unlabeled=True,
                                 transform=u_transform)
    else:
        unlabeled = open_unlabeled(d.unlabeled, image_topic=d.unlabeled_topic or None,
                                   classes=train_set.class_spec, transform=u_transform)
    if rank == 0:
        logger.info("unlabelled: %d frames (%s)", len(unlabeled), d.unlabeled)
    return train_set, unlabeled


def _unlabeled_batches(cfg: TrainConfig, unlabeled: Any, rank: int, world: int
                       ) -> Iterator[torch.Tensor]:
    """Image batches of twice the unlabelled batch size: the two halves are CutMix partners."""
    d = cfg.data
    size = 2 * (d.unlabeled_batch_size or d.batch_size)
    if len(unlabeled) < size:
        raise ValueError(f"{len(unlabeled)} unlabelled frames are fewer than two batches "
                         f"({size}); lower data.unlabeled_batch_size")
    sampler = DistributedSampler(unlabeled, world, rank, seed=cfg.seed + 1) if world > 1 else None
    loader = DataLoader(unlabeled, batch_size=size, shuffle=sampler is None, sampler=sampler,
                        num_workers=d.workers, drop_last=True, worker_init_fn=worker_init_fn,
                        generator=make_generator(cfg.seed + 1), persistent_workers=d.workers > 0)
    return (images for images, _ in _batches(loader, sampler))


def _mgd(cfg: TrainConfig, model: SlimSegNet, external: ExternalTeacher | None,
         ignore_index: int) -> MGD:
    m = cfg.mgd
    outside = external.teacher if external is not None and m.external_teacher else None
    mean = MeanTeacher(model, m.ema_decay) if m.ema_teacher else None
    return MGD(m, outside, mean, ignore_index)


def _external_teacher(cfg: TrainConfig, model: SlimSegNet, transform: TrainTransform,
                      device: torch.device, out: Path, announce: bool) -> ExternalTeacher | None:
    """The frozen teacher and Knowledge Adaptation's modules of ``cfg.loss``, or None.

    Stage 1 (the autoencoder) runs here when its file does not exist yet, on its own data
    stream, so the student sees the same batches with and without Knowledge Adaptation.
    """
    lc = cfg.loss
    if not lc.teacher:
        return None
    teacher = load_teacher(lc.teacher, num_classes=cfg.model.num_classes, mean=transform.mean,
                           std=transform.std).to(device)
    if lc.ka_adapt_weight <= 0 and lc.ka_affinity_weight <= 0:
        return ExternalTeacher(teacher)
    ae_path = Path(lc.ka_autoencoder) if lc.ka_autoencoder else out / "ka_autoencoder.safetensors"
    if ae_path.is_file():
        autoencoder = load_autoencoder(ae_path, teacher).to(device)
    else:
        if announce:
            logger.info("Knowledge Adaptation stage 1: an autoencoder on %s's features "
                        "(%d steps) -> %s", lc.teacher, lc.ka_ae_steps, ae_path)
        d = cfg.data
        ae_transform = TrainTransform(d.crop_size, d.scale_range, seed=cfg.seed + 10_007,
                                      **cfg.augment.transform_kwargs())
        ae_set = build_dataset(d.dataset, d.root, d.train_split, transform=ae_transform,
                               **d.options)
        loader = DataLoader(ae_set, batch_size=d.batch_size, shuffle=True, drop_last=True,
                            num_workers=d.workers, worker_init_fn=worker_init_fn,
                            generator=make_generator(cfg.seed + 10_007))
        images = (batch[0] for batch in _batches(loader, None))
        autoencoder, summary = train_autoencoder(
            teacher, images, latent=lc.ka_latent, steps=lc.ka_ae_steps, lr=lc.ka_ae_lr,
            device=device, log=logger.info if announce else (lambda _: None))
        if announce:
            save_autoencoder(ae_path, autoencoder, teacher, summary)
    ka = KnowledgeAdaptation(autoencoder, model, lc.ka_target).to(device).train()
    return ExternalTeacher(teacher, ka)


def _summary(cfg: TrainConfig, step: int, res: dict[str, dict[str, Any]],
             seconds: float) -> dict[str, Any]:
    return {
        "dataset": cfg.data.dataset,
        "train_split": cfg.data.train_split,
        "val_split": cfg.data.val_split,
        "steps": step,
        "batch_size": cfg.data.batch_size,
        "crop_size": list(cfg.data.crop_size),
        "scale_range": list(cfg.data.scale_range),
        "kd": cfg.loss.kd,
        "boundary_weight": cfg.loss.boundary_weight,
        "ce": cfg.loss.ce,
        **({"teacher": cfg.loss.teacher, "ka_adapt_weight": cfg.loss.ka_adapt_weight,
            "ka_affinity_weight": cfg.loss.ka_affinity_weight, "ka_target": cfg.loss.ka_target}
           if cfg.loss.teacher else {}),
        "ema_decay": cfg.ema_decay,
        "augment": dataclasses.asdict(cfg.augment),
        "train_widths": list(cfg.widths_to_train),
        "wall_clock_min": round(seconds / 60, 1),
        **({"init_checkpoint": cfg.init_checkpoint} if cfg.init_checkpoint else {}),
        **({"encoder_init": cfg.encoder_init} if cfg.encoder_init else {}),
        "val": {w: {k: v for k, v in r.items() if k != "per_class_iou"} for w, r in res.items()},
    }


def _save_state(path: Path, modules: dict[str, torch.nn.Module],
                optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, step: int,
                best_score: float, elapsed_s: float) -> None:
    # Our own resumable state, loaded back with weights_only=True (no arbitrary unpickling).
    tmp = path.with_suffix(".tmp")
    state = {name: module.state_dict() for name, module in modules.items()}
    state.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), step=step,
                 best_score=best_score, elapsed_s=elapsed_s)
    torch.save(state, tmp)
    os.replace(tmp, path)


class LossTerms:
    """Running means of every loss term of every width (``ce``, ``kd``, ``ka_adapt``, ...)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, dict[str, float]] = {}
        self._count = 0

    def add(self, report: dict[float, dict[str, float]]) -> None:
        self._count += 1
        for w, parts in report.items():
            sums = self._sums.setdefault(width_key(w), {})
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value

    def means(self) -> dict[str, dict[str, float]]:
        return {w: {k: v / self._count for k, v in parts.items()}
                for w, parts in self._sums.items()}

    def describe(self) -> str:
        return "; ".join(f"w{w} " + " ".join(f"{k} {v:.4f}" for k, v in parts.items())
                         for w, parts in self.means().items())
