"""Write the simulated-camera bags that `slimseg adapt` and `slimseg recalibrate` are measured on.

  OUT/shifted_train   CamVid train through the camera, no labels (the robot's recording)
  OUT/shifted_val     CamVid val through the camera, with labels (the scoring, disjoint frames)

Cameras: a = docs/data.md's (gamma 1.8, blue cast, clipped; scripts/bn_recalibration.py),
b = lifted shadows, warm cast, sensor noise (scripts/distill_comparison.py's shift_b, a fresh
noise draw per frame).

Usage:
  python scripts/shifted_bags.py --data-root ../shared/data/camvid --camera b --out runs/shift_b
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bn_recalibration import shift as shift_a
from distill_comparison import shift_b

from slimseg_ros.data import build_dataset
from slimseg_ros.eval import bagio


def write(root: str, split: str, camera: str, out: Path, labels: bool) -> None:
    data = build_dataset("camvid", root, split)

    def frames():
        for i in range(len(data)):
            rgb, lab = data.load(i)
            shifted = shift_a(rgb) if camera == "a" else shift_b(rgb, i)
            yield shifted, lab if labels else None

    bagio.write_frames_bag(out, frames(), rate_hz=10, compressed="png", overwrite=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--camera", choices=("a", "b"), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    write(args.data_root, "train", args.camera, out / "shifted_train", labels=False)
    write(args.data_root, "val", args.camera, out / "shifted_val", labels=True)
    print(f"wrote {out / 'shifted_train'} and {out / 'shifted_val'}")


if __name__ == "__main__":
    main()
