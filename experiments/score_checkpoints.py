"""Score checkpoints side by side, per width, on the studies' sets (slimseg_ros.eval.study_sets).

Used to decide whether a new model replaces the shipped one: the same frames, the same
deployment path (frozen width, torch on the CPU or --device), one table per metric and one JSON.

  val        CamVid val (101 frames of drive 0016E5)
  heldout    CamVid train's drive 0006R0 (only meaningful for checkpoints that never trained on it)
  shift_a    val through the simulated camera of docs/log/adapt.md (gamma 1.8, blue cast)
  shift_b    val through another camera (lifted shadows, warm cast, sensor noise)

Usage:
  python experiments/score_checkpoints.py shipped=models/slimseg_camvid.safetensors \\
      new=runs/ship1/best.safetensors --sets val,shift_a,shift_b --json docs/ship/scores.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slimseg_ros.eval.study import markdown_table
from slimseg_ros.eval.study_sets import score_checkpoint, study_sets

METRICS = ("miou", "boundary_f1")


def table(scores: dict[str, dict], sets: list[str], metric: str) -> str:
    """One Markdown row per (checkpoint, width), one column per set."""
    rows = [[name, width, *(f"{per_set[s][width][metric]:.4f}" for s in sets)]
            for name, per_set in scores.items() for width in sorted(per_set[sets[0]], key=float)]
    return markdown_table(["model", "width", *sets], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--data-root", default="data/camvid")
    ap.add_argument("--sets", default="val,shift_a,shift_b")
    ap.add_argument("--json", default=None, help="write every score here")
    ap.add_argument("--device", default="cpu", help="torch device of the deployment path")
    args = ap.parse_args()
    named = {}
    for item in args.checkpoints:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"expected NAME=PATH to an existing checkpoint, got {item!r}")
        named[name] = Path(path)
    available = study_sets(args.data_root)
    wanted = args.sets.split(",")
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise SystemExit(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(available)}")
    sets = {s: available[s] for s in wanted}
    scores = {name: score_checkpoint(path, sets, args.device) for name, path in named.items()}
    for metric in METRICS:
        print(f"\n{metric}\n" + table(scores, wanted, metric))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        doc = {"checkpoints": {n: str(p) for n, p in named.items()}, "sets": wanted,
               "scores": scores}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
