"""Recipes compared on frames of a drive none of them saw: old recipe, new recipe, + teacher/KA.

Every arm trains on CamVid train without sequence 0006R0 (266 frames of drives 0001TP and 0016E5)
for the same number of steps, batch, crop and seed-controlled data order, then is scored per width
through the deployment path on four sets (slimseg_ros.eval.study_sets):

  val        CamVid val (101 frames of drive 0016E5, which training saw other frames of)
  heldout    CamVid train's 0006R0 (101 frames of a drive no arm, and not the teacher, saw)
  shift_a    val through the simulated camera of docs/log/adapt.md (gamma 1.8, gains .75/.85/1.1)
  shift_b    val through another camera: lifted shadows, warm cast, sensor noise
             (both on every second val frame)

Arms (override lists on config/train_camvid.yaml):
  shipped   the shipped model's recipe: plain CE, scale 0.4-1.2, no EMA, no camera augmentation
  recipe    OHEM CE, scale 0.75-1.25 (deployment scale), EMA, camera augmentation, AdamW wd 0.01
  ka        recipe + the teacher (models/teacher_camvid.safetensors) as KD teacher of width 1.0
            + Knowledge Adaptation (beta 50, gamma 1) at width 1.0
  ka_all    ka with the KA terms at every width (loss.ka_target=all)
  ka_all_tkd  ka_all with the teacher's logits as KD target of every width (loss.kd=teacher)
            instead of the next wider width's (stepwise)
  teacher_kd  recipe + the teacher's logit KD at width 1.0 without the KA terms (what KA adds)
  quarter   shipped recipe on a fixed random quarter of the frames' labels (MGD's protocol)
  quarter_mgd   quarter + the other frames unlabelled, Multi-Granularity Distillation with the
            student's weight average as teacher (the external teacher saw those frames' labels,
            so it stays out of this comparison)
  quarter_mgd_ext  quarter_mgd with loss.teacher (given as an override) as a second teacher,
            pseudo labels where the teachers' mean probability reaches 0.7
  eighth, eighth_mgd_ext  quarter and quarter_mgd_ext at an eighth of the labels
  quarter_mgd_warm  quarter_mgd warm-started: the first half of the steps on the labelled
            quarter alone (mgd.start_step), pseudo labels only where the mean teacher's
            probability reaches 0.7 (mgd.confidence)

Resumable: finished (arm, seed) results are kept in OUT/results.json; an interrupted run resumes
from its own train_state. Several processes may share OUT (e.g. one arm each with --threads 1,
which holds up better than one 2-thread process on a machine shared with other jobs). Usage:
  python experiments/distill_comparison.py --data-root data/camvid --out runs/distill \\
      --arms ka,recipe,shipped --seeds 0,1 --steps 800
Prints a Markdown table (mean and spread over seeds); docs/log/training.md holds runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from slimseg_ros.eval.study import format_mean_spread, markdown_table
from slimseg_ros.eval.study_sets import HELD_OUT, SET_NAMES, score_checkpoint, study_sets
from slimseg_ros.model.config import width_key
from slimseg_ros.train.config import TrainConfig, load_train_config
from slimseg_ros.train.loop import train

TEACHER = "models/teacher_camvid.safetensors"
RECIPE = ["loss.ce=ohem", "data.scale_range=[0.75,1.25]", "ema_decay=0.999",
          "augment.camera_prob=0.5", "optim.weight_decay=0.01"]
ARMS: dict[str, list[str]] = {
    "shipped": ["data.scale_range=[0.4,1.2]"],
    "recipe": RECIPE,
    "ka": RECIPE + ["loss.teacher={teacher}"],
    "ka_all": RECIPE + ["loss.teacher={teacher}", "loss.ka_target=all"],
    "ka_all_tkd": RECIPE + ["loss.teacher={teacher}", "loss.ka_target=all", "loss.kd=teacher"],
    "teacher_kd": RECIPE + ["loss.teacher={teacher}", "loss.ka_adapt_weight=0",
                            "loss.ka_affinity_weight=0"],
    "quarter": ["data.scale_range=[0.4,1.2]", "data.labeled_fraction=0.25",
                "data.partition={out}/partition_quarter.json"],
    "quarter_mgd": ["data.scale_range=[0.4,1.2]", "data.labeled_fraction=0.25",
                    "data.partition={out}/partition_quarter.json", "data.unlabeled=partition",
                    "mgd.external_teacher=false"],
}
ARMS["quarter_mgd_warm"] = ARMS["quarter_mgd"] + ["mgd.start_step={half}", "mgd.confidence=0.7"]
# with loss.teacher given on the command line (e.g. a labelled-only quarter model, which saw no
# withheld label) as MGD's second teacher beside the weight average
ARMS["quarter_mgd_ext"] = [o for o in ARMS["quarter_mgd"]
                           if not o.startswith("mgd.external_teacher=")] + ["mgd.confidence=0.7"]
# the same protocol at an eighth of the labels (its own fixed partition)
for _quarter in ("quarter", "quarter_mgd_ext"):
    ARMS[_quarter.replace("quarter", "eighth")] = [
        o.replace("labeled_fraction=0.25", "labeled_fraction=0.125").replace(
            "partition_quarter", "partition_eighth") for o in ARMS[_quarter]]


def table(results: dict, arms: list[str], metric: str = "miou") -> str:
    """One row per (arm, width): each set's mean over seeds, ± the spread with two or more."""
    widths = sorted({w for r in results.values() for w in r["scores"]["val"]}, key=float)
    rows = []
    for arm in arms:
        runs = [r for _, r in sorted(results.items()) if r["arm"] == arm]
        seeds = ",".join(str(r["seed"]) for r in runs)
        rows += [[arm, seeds, w, *(format_mean_spread([r["scores"][s][w][metric] for r in runs])
                                   for s in SET_NAMES)] for w in widths if runs]
    return markdown_table(["arm", "seeds", "width", *SET_NAMES], rows)


def arm_overrides(arm: str, out: Path, steps: int, teacher: str = TEACHER) -> list[str]:
    """The arm's own overrides, its placeholders filled in."""
    return [o.format(teacher=teacher, out=out, half=steps // 2) for o in ARMS[arm]]


def arm_config(args: argparse.Namespace, arm: str, seed: int, run_out: Path) -> TrainConfig:
    """One arm's training configuration: the study's common settings, the arm's, the command
    line's extra overrides (``args``: this script's, or one with the same fields)."""
    out = Path(args.out)
    common = [
        f"data.root={args.data_root}", f"steps={args.steps}", f"threads={args.threads}",
        "data.crop_size=[192,256]", f"data.options={{exclude_sequences: [{HELD_OUT}]}}",
        "val_every=0", "checkpoint_every=50", "optim.warmup_steps=50",
        # one stage-1 autoencoder for every KA run (trained by the first, on its own data stream)
        f"loss.ka_autoencoder={out / 'ka_autoencoder.safetensors'}",
        *args.overrides,
    ]
    return load_train_config(args.config, common + arm_overrides(arm, out, args.steps,
                                                                 args.teacher)
                             + [f"seed={seed}", f"out={run_out}"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="config/train_camvid.yaml")
    ap.add_argument("--data-root", default="data/camvid")
    ap.add_argument("--out", default="runs/distill")
    ap.add_argument("--arms", default="ka,recipe,shipped")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--teacher", default=TEACHER, help=f"teacher checkpoint (default {TEACHER})")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every arm")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training's progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    sets = study_sets(args.data_root)
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in arms:
            name = f"{arm}_s{seed}"
            if name in results:
                print(f"{name}: done already", flush=True)
                continue
            overrides = arm_overrides(arm, out, args.steps, args.teacher)
            cfg = arm_config(args, arm, seed, out / name)
            t0 = time.monotonic()
            res = train(cfg, progress=False)
            if res.stopped_by:  # its state is saved: the same command resumes this arm
                raise SystemExit(f"{name}: stopped by {res.stopped_by} at step {res.steps}")
            minutes = round((time.monotonic() - t0) / 60, 1)
            results[name] = {"arm": arm, "seed": seed, "steps": res.steps, "minutes": minutes,
                             "threads": args.threads, "overrides": overrides,
                             "scores": score_checkpoint(res.last_checkpoint, sets)}
            # re-read before writing: several processes (e.g. one arm each) may share the file
            if results_path.is_file():
                results = {**json.loads(results_path.read_text()), name: results[name]}
            tmp = results_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(results_path)
            print(f"{name}: {minutes} min; " + ", ".join(
                f"{s} w1.0 {results[name]['scores'][s][width_key(1.0)]['miou']:.3f}"
                for s in SET_NAMES), flush=True)
    print("mIoU (mean ± spread over seeds)\n" + table(results, arms))
    print("\nboundary F1\n" + table(results, arms, "boundary_f1"))


if __name__ == "__main__":
    main()
