"""Write the simulated-camera bags that `slimseg adapt` and `slimseg recalibrate` are measured on.

  OUT/shifted_train   CamVid train through the camera, no labels (the robot's recording)
  OUT/shifted_val     CamVid val through the camera, with labels (the scoring, disjoint frames)

Cameras (slimseg_ros.data.camera_shifts): a = the first one measured (docs/log/adapt.md; gamma
1.8, blue cast, clipped), b = lifted shadows, warm cast, sensor noise (a fresh noise draw per
frame), c = over-exposed and motion-blurred.

Usage:
  python experiments/shifted_bags.py --data-root data/camvid --camera b --out runs/shift_b
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slimseg_ros.data.camera_shifts import CAMERA_SHIFTS
from slimseg_ros.eval.study_sets import shifted_bag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--camera", choices=sorted(CAMERA_SHIFTS), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    camera = CAMERA_SHIFTS[args.camera]  # given the frame index: b's noise differs per frame
    shifted_bag(args.data_root, "train", out / "shifted_train", labels=False, camera=camera)
    shifted_bag(args.data_root, "val", out / "shifted_val", labels=True, camera=camera)
    print(f"wrote {out / 'shifted_train'} and {out / 'shifted_val'}")


if __name__ == "__main__":
    main()
