"""SlimSeg's claim at an equal, fixed budget: slimmable + stepwise KD + boundary loss vs the rest.

Arms (same steps, crop, resolution, seed, optimiser and data order):
  slimseg       slimmable, stepwise downward KD + boundary-guided loss (the method)
  slim_kd       slimmable, stepwise KD, no boundary loss (isolates the boundary term)
  slim_ce       slimmable, cross-entropy only
  independent   one network per width, trained alone with cross-entropy

Usage:
  python scripts/ablation.py --data-root ../shared/data/camvid --out runs/ablation \
      [--steps 300] [--threads 1] [--arms slimseg,slim_ce,independent,slim_kd]
Writes runs/ablation/results.json and prints a Markdown table (docs/results.md holds a run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from slimseg_ros.model import count_flops, load_checkpoint
from slimseg_ros.model.config import width_key
from slimseg_ros.train.config import load_train_config
from slimseg_ros.train.loop import train

ARMS: dict[str, list[str]] = {
    "slimseg": ["loss.kd=stepwise", "loss.boundary_weight=1.0"],
    "slim_kd": ["loss.kd=stepwise", "loss.boundary_weight=0.0"],
    "slim_ce": ["loss.kd=none", "loss.boundary_weight=0.0"],
    "independent": ["loss.kd=none", "loss.boundary_weight=0.0"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="config/train_camvid.yaml")
    ap.add_argument("--data-root", default="../shared/data/camvid")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arms", default="slimseg,slim_ce,independent,slim_kd")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every arm")
    args = ap.parse_args()
    out = Path(args.out)
    # the small-budget protocol: half-resolution scenes, small crops, evaluation at half size
    common = [
        f"data.root={args.data_root}", f"steps={args.steps}", f"threads={args.threads}",
        "data.crop_size=[128,160]", "data.scale_range=[0.4,0.8]", "data.val_size=[180,240]",
        "data.workers=0", "val_every=0", "checkpoint_every=100000", "seed=0",
        *args.overrides,
    ]
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    for arm in args.arms.split(","):
        base = load_train_config(args.config, common)
        widths = base.model.widths
        runs = [(f"{arm}", [])] if arm != "independent" else [
            (f"independent_w{width_key(w)}", [f"train_widths=[{w}]"]) for w in widths]
        for name, extra in runs:
            if name in results:
                print(f"{name}: done already")
                continue
            cfg = load_train_config(args.config, common + ARMS[arm] + extra + [f"out={out / name}"])
            t0 = time.monotonic()
            res = train(cfg, progress=False)
            val = res.history[-1]["widths"]
            results[name] = {"minutes": round((time.monotonic() - t0) / 60, 1), "val": val}
            (out / "results.json").write_text(json.dumps(results, indent=2))
            print(f"{name}: {json.dumps(val)}", flush=True)
    print(table(results, out))


def table(results: dict, out: Path) -> str:
    arms = [a for a in ("slimseg", "slim_kd", "slim_ce") if a in results]
    model, meta = load_checkpoint(next(out.glob("*/last.safetensors")))
    size = tuple(meta.input_size)
    rows = ["| width | GFLOPs | " + " | ".join(f"{a} mIoU / bF1" for a in arms)
            + " | independent mIoU / bF1 |", "|---" * (3 + len(arms)) + "|"]
    for w in model.widths:
        key = width_key(w)
        cells = [f"{results[a]['val'][key]['miou']:.3f} / {results[a]['val'][key]['boundary_f1']:.3f}"
                 for a in arms]
        ind = results.get(f"independent_w{key}", {}).get("val", {}).get(key)
        cells.append(f"{ind['miou']:.3f} / {ind['boundary_f1']:.3f}" if ind else "-")
        gflops = count_flops(model.freeze(w), size) / 1e9
        rows.append(f"| {key} | {gflops:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
