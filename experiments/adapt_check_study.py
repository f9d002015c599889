"""Is `slimseg adapt`'s label-free check wrong, or is the yardstick? Labels on the check's frames.

`slimseg adapt` scores its candidates (input, recalibrated, adapted) on held-back frames by their
agreement with the teacher; docs/log/adapt.md scores the result on shifted val, other frames.
Where the two disagree (camera A at width 0.75), either the agreement misjudges the candidates
or the two frame sets differ. The held-back frames are CamVid train frames, so they have labels:
this scores every candidate on them with those labels too, beside shifted val and the check's
own agreement, from one adaptation (default settings, the seeds given).

Usage:
  python experiments/adapt_check_study.py --data-root data/camvid --camera a --bags runs/shift_a \\
      --seed 0 --out runs/adapt_study/a_s0
Writes OUT/study.json (recalibrated and adapted, per width: agreement, mIoU on the labelled
check frames, mIoU on shifted val), OUT/decision.json and OUT/{recalibrated,adapted}.safetensors (a
rerun only scores them), prints a Markdown table. The labelled copy of the train bag
(BAGS/shifted_train_labelled) is written once if missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from slimseg_ros.data.camera_shifts import CAMERA_SHIFTS
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.data.unlabeled import SubsetFrames, open_unlabeled
from slimseg_ros.eval.study_sets import shifted_bag
from slimseg_ros.model.checkpoint import load_checkpoint, save_checkpoint
from slimseg_ros.runtime.loader import DEFAULT_MODEL_NAME, default_model_path
from slimseg_ros.train.adapt import adapt_model
from slimseg_ros.train.adapt_check import held_back
from slimseg_ros.train.adapt_settings import AdaptSettings
from slimseg_ros.train.validate import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--camera", choices=sorted(CAMERA_SHIFTS), required=True)
    ap.add_argument("--bags", required=True, help="folder with shifted_train and shifted_val")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    bags, out = Path(args.bags), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labelled_train = bags / "shifted_train_labelled"
    if not labelled_train.exists():
        shifted_bag(args.data_root, "train", labelled_train, labels=True,
                    camera=CAMERA_SHIFTS[args.camera])
    frames = open_unlabeled(str(bags / "shifted_train"))
    train_with_labels = RosbagFrames(str(labelled_train), "all")
    # the labelled copy must be the same frames, or its labels score other images
    for i in (0, len(frames) // 2, len(frames) - 1):
        if not np.array_equal(frames.load(i)[0], train_with_labels.load(i)[0]):
            raise SystemExit(f"{labelled_train} frame {i} differs from the unlabelled bag's")
    # the candidates as the check scored them, not as a refit makes them again
    settings = AdaptSettings(seed=args.seed, threads=args.threads, refit=False)
    _, check_idx = held_back(len(frames), settings.check_fraction)
    check_with_labels = SubsetFrames(train_with_labels, check_idx)
    shifted_val = RosbagFrames(str(bags / "shifted_val"), "all")
    checkpoint = default_model_path(DEFAULT_MODEL_NAME)
    model, meta = load_checkpoint(checkpoint)
    names = ("recalibrated", "adapted")  # the pair the misses are about (the kept model is
    # one of them or their mix per width; the input model never won the check)
    decision_path = out / "decision.json"
    if decision_path.is_file() and all((out / f"{n}.safetensors").is_file() for n in names):
        decision = json.loads(decision_path.read_text())  # adapted before: score only
    else:
        meta, result = adapt_model(model, meta, frames, settings,
                                   source=str(bags / "shifted_train"))
        assert result.decision is not None
        for name in names:  # on disk before any scoring
            model.load_state_dict(result.candidates[name])
            save_checkpoint(out / f"{name}.safetensors", model, meta)
        decision = result.decision.as_dict()
        decision_path.write_text(json.dumps(decision, indent=1))
    study: dict = {"camera": args.camera, "seed": args.seed, "check_frames": len(check_idx),
                   "decision": decision, "candidates": {}}
    for name in names:
        model, meta = load_checkpoint(out / f"{name}.safetensors")
        on_check = validate(model, check_with_labels, model.widths, meta)
        on_val = validate(model, shifted_val, model.widths, meta)
        study["candidates"][name] = {
            w: {"agreement": decision["agreement"][name][w],
                "check_miou": on_check[w]["miou"], "val_miou": on_val[w]["miou"]}
            for w in on_check}
    (out / "study.json").write_text(json.dumps(study, indent=1))
    print(f"camera {args.camera}, seeds {args.seed}-{args.seed + settings.runs - 1}: "
          f"{len(check_idx)} held-back frames; differences from recalibrated")
    print("| width | kept | agreement: adapted | check frames, labels: adapted | "
          "shifted val: adapted |\n| --- | --- | --- | --- | --- |")
    c = study["candidates"]
    for w in c["adapted"]:
        a, r = c["adapted"][w], c["recalibrated"][w]
        print(f"| {w} | {decision['choice'][w]} | {a['agreement'] - r['agreement']:+.4f} | "
              f"{a['check_miou'] - r['check_miou']:+.4f} | {a['val_miou'] - r['val_miou']:+.4f} |")


if __name__ == "__main__":
    main()
