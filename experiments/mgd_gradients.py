"""Where each MGD term pushes the weights, against the labels it is meant to stand in for.

Issue 27's diagnosis asks for MGD's weights: a term whose gradient dwarfs the labelled one
drowns it, and a term that points away from what the true labels would teach costs whatever its
weight. From one model (the continuation's start: a labelled-only partition model), on the same
batches, this script takes the gradient of each part of an MGD training step alone:

- ``labelled``: the SlimSeg loss on the labelled batch (every width), what labelled-only trains;
- ``pixel_labelled``: MGD's CE to the teachers' argmax on that batch;
- ``pixel``: the SlimSeg loss on CutMix-mixed unlabelled frames with the teachers' pseudo labels;
- ``region``, ``image``: MGD's self-similarity and pooled-logit terms on those frames;
- ``mgd``: the four together, as a step adds them to ``labelled``;

and two reference directions that no run may use: ``oracle``, the SlimSeg loss on the same mixed
frames with their *withheld* true labels (what perfect pseudo labels would teach), and the
labelled gradient itself. It prints each part's norm relative to ``labelled`` and its cosine
with ``labelled`` and with ``oracle``, averaged over ``--batches`` batches, and writes the JSON.

```
python experiments/mgd_gradients.py --data-root data/camvid --out runs/gradq \\
    --arm quarter_mgd_ext --json docs/mgd/gradients_quarter_s0.json init_checkpoint=$INIT \\
    loss.teacher=$INIT loss.ka_adapt_weight=0 loss.ka_affinity_weight=0
```
(the same arguments as ``distill_comparison.py``, whose configuration it builds; ``--out`` must
hold that arm's partition file.)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch.utils.data import DataLoader

from distill_comparison import TEACHER, arm_config
from slimseg_ros.data.transforms import TrainTransform
from slimseg_ros.data.unlabeled import SubsetFrames, labeled_partition
from slimseg_ros.train.loop import _build
from slimseg_ros.train.mgd import MGD, cutmix_masks
from slimseg_ros.train.step import slimseg_step

PARTS = ("labelled", "pixel_labelled", "pixel", "region", "image", "mgd", "oracle")


def _gradient(model: torch.nn.Module, fn: Callable[[], object], seed: int) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks for every part of one batch
    fn()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()])


def _epochs(loader: Iterable) -> Iterator:
    """``loader``'s batches, epoch after epoch (a partition's labelled part is a few batches)."""
    while True:
        yield from loader


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default="data/camvid")
    ap.add_argument("--out", required=True, help="the study folder (holds the partition file)")
    ap.add_argument("--config", default="config/train_camvid.yaml")
    ap.add_argument("--arm", default="quarter_mgd_ext")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--teacher", default=TEACHER)
    ap.add_argument("--json", required=True)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    args.steps = 1  # the configuration's budget plays no part
    cfg = arm_config(args, args.arm, args.seed, Path(args.out) / "gradients_run")
    run = _build(cfg)  # the arm's model, teachers and data, as training builds them
    if run.mgd is None:
        raise SystemExit(f"arm {args.arm} trains no MGD")
    model, mgd, m = run.model, run.mgd, cfg.mgd
    alone = {name: MGD(replace(m, **{f"{other}_weight": 0.0 for other in ("region", "image")
                                      if other != name}), mgd.external, mgd.mean,
                       run.meta.ignore_index) for name in ("region", "image")}
    # the run's unlabelled frames *with* their withheld labels, for the oracle only
    d = cfg.data
    base = run.loader.dataset.base
    _, unlabelled = labeled_partition(base, d.labeled_fraction, d.partition_seed,
                                      Path(d.partition))
    # augmented and batched as training's unlabelled stream (loop._training_sets' seed,
    # loop._unlabeled_batches' size), its own order: the labels are the only difference
    labelled_view = SubsetFrames(base, unlabelled, transform=TrainTransform(
        d.crop_size, d.scale_range, seed=cfg.seed + 20_011, **cfg.augment.transform_kwargs()))
    pairs = DataLoader(labelled_view, batch_size=2 * (d.unlabeled_batch_size or d.batch_size),
                       shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(1))
    step_args = {"widths": cfg.widths_to_train, "cfg": cfg.loss,
                 "ignore_index": run.meta.ignore_index}
    sums = {p: {"norm": 0.0, "cos_labelled": 0.0, "cos_oracle": 0.0} for p in PARTS}
    confident = 0.0
    batches = zip(range(args.batches), _epochs(run.loader), _epochs(pairs))
    for b, (images, labels), (u_images, u_labels) in batches:
        images = images.contiguous(memory_format=torch.channels_last)
        u0, u1 = u_images.contiguous(memory_format=torch.channels_last).chunk(2)
        y0, y1 = u_labels.chunk(2)
        rng = torch.Generator().manual_seed(1000 + b)
        state = rng.get_state()
        mixed = mgd.mixed_batch(u0, u1, rng)
        again = torch.Generator()
        again.set_state(state)
        box = cutmix_masks(u0.shape[0], u0.shape[2], u0.shape[3], boxes=m.cutmix_boxes,
                           area=m.cutmix_area, generator=again)[:, 0] > 0.5
        truth = torch.where(box, y1, y0)  # the mixed frames' withheld labels
        confident += mixed.confident / args.batches
        targets = mgd.labeled_targets(images)
        ext = run.external
        g = {
            "labelled": _gradient(model, lambda: slimseg_step(
                model, images, labels, external=ext, **step_args), b),
            "pixel_labelled": _gradient(model, lambda: slimseg_step(
                model, images, labels, external=ext, extra_terms=mgd.labeled_terms(targets),
                **step_args), b),
            "pixel": _gradient(model, lambda: slimseg_step(
                model, mixed.images, mixed.labels, loss_scale=m.pixel_weight, **step_args), b),
            "oracle": _gradient(model, lambda: slimseg_step(
                model, mixed.images, truth, **step_args), b),
        }
        g["pixel_labelled"] = g["pixel_labelled"] - g["labelled"]  # the term alone
        for name, term in alone.items():
            g[name] = _gradient(model, lambda term=term: slimseg_step(
                model, mixed.images, mixed.labels, extra_terms=term.unlabeled_terms(mixed),
                loss_scale=0.0, **step_args), b)
        g["mgd"] = g["pixel_labelled"] + g["pixel"] + g["region"] + g["image"]
        ref = g["labelled"].norm()
        for p in PARTS:
            sums[p]["norm"] += float(g[p].norm() / ref) / args.batches
            sums[p]["cos_labelled"] += _cos(g[p], g["labelled"]) / args.batches
            sums[p]["cos_oracle"] += _cos(g[p], g["oracle"]) / args.batches
        print(f"batch {b + 1}/{args.batches}: pixel cos to oracle "
              f"{_cos(g['pixel'], g['oracle']):+.3f}, mgd/labelled norm "
              f"{float(g['mgd'].norm() / ref):.2f}", flush=True)
    doc = {"arm": args.arm, "overrides": args.overrides, "batches": args.batches,
           "pseudo_labelled": round(confident, 3),
           "parts": {p: {k: round(v, 4) for k, v in s.items()} for p, s in sums.items()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print("| part | norm / labelled | cos with labelled | cos with oracle |\n"
          "| --- | --- | --- | --- |")
    for p, v in doc["parts"].items():
        print(f"| {p} | {v['norm']:.3f} | {v['cos_labelled']:+.3f} | {v['cos_oracle']:+.3f} |")


if __name__ == "__main__":
    main()
