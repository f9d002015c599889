"""Does `slimseg recalibrate` repair a camera shift? CamVid seen through a different "camera".

The shift (camera A of slimseg_ros.data.camera_shifts) stands for a robot camera unlike
CamVid's: darker (gamma 1.8), a blue cast (channel gains 0.75 / 0.85 / 1.1) and clipped
highlights. Both bags are real rosbag2 bags:

  shifted_train   CamVid train frames, shifted, no labels   -> recalibration frames
  shifted_val     CamVid val frames, shifted, with labels   -> evaluation (disjoint frames)

Then the shipped model and the recalibrated ones are evaluated on shifted_val at every width,
through the same commands a user runs (`slimseg recalibrate`, `slimseg eval --dataset rosbag`):
recalibrated with training-like crops (the default) and with whole frames (`--full-frames`).
As a control, the shipped model recalibrated on unshifted CamVid train is evaluated on the
unshifted val split: recalibration in the training domain should cost (almost) nothing.
With --finetune-steps N, a third arm fine-tunes the shipped model for N steps on the shifted
train frames *with* their labels (`slimseg train ... data.dataset=rosbag init_checkpoint=...`):
what labelled robot data buys over label-free recalibration.

Usage:
  python experiments/bn_recalibration.py --data-root data/camvid --out runs/bn_recal \
      [--frames 200]
Prints a Markdown table and writes OUT/results.json (docs/log/adapt.md holds a run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimseg_ros.cli.main import main as slimseg
from slimseg_ros.data import build_dataset
from slimseg_ros.data.camera_shifts import SHIFT_A_GAINS, SHIFT_A_GAMMA
from slimseg_ros.eval import bagio
from slimseg_ros.eval.study import markdown_table
from slimseg_ros.eval.study_sets import shifted_bag

SHIPPED = "models/slimseg_camvid.safetensors"


def evaluate(checkpoint: str | None, bag: Path, out: Path) -> dict[str, float]:
    args = ["eval", "--dataset", "rosbag", "--data-root", str(bag), "--split", "all",
            "--json", str(out)]
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    if slimseg(args) != 0:
        raise SystemExit(f"slimseg eval failed on {bag}")
    doc = json.loads(out.read_text())
    return {w: r["miou"] for w, r in doc["widths"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", default="runs/bn_recal")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="also fine-tune on labelled shifted train frames (0 = skip)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_bag = shifted_bag(args.data_root, "train", out / "shifted_train", labels=False)
    val_bag = shifted_bag(args.data_root, "val", out / "shifted_val", labels=True)
    def recalibrate(name: str, *source: str) -> str:
        path = out / f"{name}.safetensors"
        if slimseg(["recalibrate", *source, "--frames", str(args.frames), "--out", str(path)]):
            raise SystemExit("slimseg recalibrate failed")
        return str(path)

    crops = recalibrate("recalibrated_crops", "--bag", str(train_bag))
    whole = recalibrate("recalibrated_whole", "--bag", str(train_bag), "--full-frames")
    clean = recalibrate("recalibrated_clean", "--dataset", "camvid", "--data-root",
                        args.data_root, "--split", "train")
    tuned = None
    if args.finetune_steps:
        labelled = shifted_bag(args.data_root, "train", out / "shifted_train_labelled", True)
        run = out / "finetune"
        if slimseg(["train", "--config", "config/train_camvid.yaml", f"init_checkpoint={SHIPPED}",
                    "data.dataset=rosbag", f"data.root={labelled}", "data.train_split=all",
                    "data.crop_size=[192,256]", f"steps={args.finetune_steps}", "val_every=0",
                    "val_images=8", "optim.lr=0.0005", "optim.warmup_steps=10",
                    "time_limit_min=0", f"out={run}"]) != 0:
            raise SystemExit("slimseg train failed")
        tuned = str(run / "last.safetensors")
    clean_val = out / "clean_val"
    bagio.write_dataset_bag(build_dataset("camvid", args.data_root, "val"), clean_val,
                            rate_hz=10, overwrite=True)
    results = {
        "shifted_val": {
            "shipped": evaluate(None, val_bag, out / "eval_shipped.json"),
            "recalibrated (crops)": evaluate(crops, val_bag, out / "eval_crops.json"),
            "recalibrated (--full-frames)": evaluate(whole, val_bag, out / "eval_whole.json"),
            **({f"fine-tuned {args.finetune_steps} steps (labels)": evaluate(
                tuned, val_bag, out / "eval_finetuned.json")} if tuned else {}),
        },
        "clean_val": {
            "shipped": evaluate(None, clean_val, out / "eval_clean_shipped.json"),
            "recalibrated on clean train (crops)": evaluate(clean, clean_val,
                                                             out / "eval_clean_recal.json"),
        },
    }
    (out / "results.json").write_text(json.dumps(
        {"frames": args.frames, "gamma": SHIFT_A_GAMMA, "gains": list(SHIFT_A_GAINS),
         "miou": results},
        indent=2) + "\n")
    for split, arms in results.items():
        names = list(arms)
        print(f"\n{split} mIoU\n")
        print(markdown_table(["width", *names], ([w, *(f"{arms[n][w]:.4f}" for n in names)]
                                                  for w in arms[names[0]])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
