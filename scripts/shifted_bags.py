"""Write the simulated-camera bags that `slimseg adapt` and `slimseg recalibrate` are measured on.

  OUT/shifted_train   CamVid train through the camera, no labels (the robot's recording)
  OUT/shifted_val     CamVid val through the camera, with labels (the scoring, disjoint frames)

Cameras: a = docs/data.md's (gamma 1.8, blue cast, clipped; scripts/bn_recalibration.py),
b = lifted shadows, warm cast, sensor noise (scripts/distill_comparison.py's shift_b, a fresh
noise draw per frame).

Usage:
  python scripts/shifted_bags.py --data-root data/camvid --camera b --out runs/shift_b
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bn_recalibration import shift, shifted_bag
from distill_comparison import shift_b

# camera(rgb, frame index): b draws its sensor noise afresh for every frame
CAMERAS = {"a": lambda rgb, _i: shift(rgb), "b": shift_b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--camera", choices=("a", "b"), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    camera = CAMERAS[args.camera]
    shifted_bag(args.data_root, "train", out / "shifted_train", labels=False, camera=camera)
    shifted_bag(args.data_root, "val", out / "shifted_val", labels=True, camera=camera)
    print(f"wrote {out / 'shifted_train'} and {out / 'shifted_val'}")


if __name__ == "__main__":
    main()
