"""One `slimseg adapt` variant on the shifted camera, scoring both the adapting weights and their
average from the same run (docs/log/adapt.md, "What adapt's settings do on the current model").

Usage:
  python experiments/adapt_sweep.py NAME CHECKPOINT \
    '{"lr": 5e-5, "teacher": "models/teacher_camvid.safetensors"}'
The JSON holds AdaptSettings fields, plus optional "steps" (default 33), "loss" and "mgd" (fields
of LossConfig / MGDConfig to override, e.g. {"loss": {"kd": "none", "boundary_weight": 0}}),
"bags" (a folder holding shifted_train and shifted_val; default runs/shift_a: camera A),
"recal_after" (default true: with "runs": 1, also score each result with BN re-estimated
afterwards) and "save" (default false: also write each scored model to
runs/adapt/{NAME}_{kept}.safetensors).
With "runs" > 1 (default 3, as `slimseg adapt`) the results are {NAME}_soup and
{NAME}_soup_runs_statistics (the same weights with the runs' BN statistics averaged instead of
re-estimated); with "runs": 1, {NAME}_student, {NAME}_average and, with "recal_after", each again
with its BN statistics re-estimated on the adaptation frames (_student_recal, _average_recal).
One line per result is appended to runs/adapt/results.jsonl.
The bags come from
`python experiments/shifted_bags.py --camera a|b|c --out runs/shift_a` (or _b, _c).

An experiment harness: it swaps the loss and MGD configs and records the weight average by
replacing names in slimseg_ros.train.adapt for this process only.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import slimseg_ros.train.adapt as adapt
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.data.unlabeled import open_unlabeled
from slimseg_ros.model.checkpoint import load_checkpoint, save_checkpoint
from slimseg_ros.train.config import LossConfig, MGDConfig
from slimseg_ros.train.recalibrate import recalibrate_model
from slimseg_ros.train.validate import validate

OUT = Path("runs/adapt")


def main() -> None:
    name, checkpoint = sys.argv[1], sys.argv[2]
    kw = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    loss_kw, mgd_kw, steps = kw.pop("loss", {}), kw.pop("mgd", {}), kw.pop("steps", 33)
    bags = kw.pop("bags", "runs/shift_a")
    recal_after = kw.pop("recal_after", True)
    save = kw.pop("save", False)
    train_bag, val_bag = f"{bags}/shifted_train", f"{bags}/shifted_val"
    adapt.LossConfig = lambda: replace(LossConfig(), **loss_kw)  # type: ignore[assignment]
    adapt.MGDConfig = lambda: replace(MGDConfig(), **mgd_kw)  # type: ignore[assignment]
    averages: list = []

    class Recorded(adapt.MeanTeacher):  # type: ignore[misc,name-defined]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            averages.append(self)

    adapt.MeanTeacher = Recorded  # type: ignore[misc]
    averaged: list = []  # a soup's state before its BN statistics are re-estimated
    uniform_average = adapt._uniform_average

    def recorded_average(states: list) -> dict:
        averaged.append(uniform_average(states))
        return averaged[-1]

    adapt._uniform_average = recorded_average  # type: ignore[assignment]
    # the recipe's own weights: a refit would adapt (and record) a second time
    settings = adapt.AdaptSettings(threads=1, steps=steps,
                                   **{"refit": False, **kw, "keep": "student"})
    t0 = time.time()
    model, meta = load_checkpoint(checkpoint)
    frames = open_unlabeled(train_bag)
    meta, _ = adapt.adapt_model(model, meta, frames, settings, f"bag {train_bag}",
                                log=lambda m: print(m, flush=True))
    scored = RosbagFrames(val_bag, "all")
    OUT.mkdir(parents=True, exist_ok=True)
    # one run: its last weights and their moving average; several: their average (the result)
    kept_weights = ([("student", model), ("average", averages[0].average.model)]
                    if settings.runs == 1 else [("soup", model)])
    if averaged:  # the soup as it was before its BN statistics were re-estimated
        runs_statistics = copy.deepcopy(model)
        runs_statistics.load_state_dict(averaged[0])
        kept_weights.append(("soup_runs_statistics", runs_statistics))
    # one run's weights again with BN re-estimated afterwards (a soup's already are)
    for kept, weights in list(kept_weights) if recal_after and settings.runs == 1 else []:
        again = copy.deepcopy(weights)
        recalibrate_model(again, meta, frames, frames=settings.recalibrate_frames)
        kept_weights.append((f"{kept}_recal", again))
    for kept, weights in kept_weights:
        scores = validate(weights, scored, weights.widths, meta)
        row = {"name": f"{name}_{kept}", "checkpoint": checkpoint, "settings": asdict(settings),
               "loss": loss_kw, "mgd": mgd_kw, "bags": bags,
               "minutes": round((time.time() - t0) / 60, 1),
               "miou": {w: round(v["miou"], 4) for w, v in scores.items()}}
        print(json.dumps(row), flush=True)
        if save:
            save_checkpoint(OUT / f"{name}_{kept}.safetensors", weights, meta)
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
