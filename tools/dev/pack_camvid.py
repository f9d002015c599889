"""Pack CamVid small enough to travel to a device machine (the device tool carries 64 MiB).

The SegNet layout's PNG frames are 122 MB. As JPEG, train + val + labels take 34 MiB at quality
95, 25 MiB at 90 and 20 MiB at 85 (the default: the tracked tree, with the shipped model and
the 23 MB teacher, is already about 38 MiB of the 64). Compression noise at 85 is well below
what the camera augmentation adds. Labels stay lossless PNG. The loader pairs images and labels
by file stem, so the packed folder is an ordinary CamVid root:

  python tools/dev/pack_camvid.py --src data/camvid --out .gpu/camvid
  slimseg train --config config/train_camvid.yaml --data-root .gpu/camvid ...
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2

SPLITS = ("train", "val", "test")


def pack(src: Path, out: Path, quality: int) -> int:
    """Write ``out`` from ``src``; returns the bytes written."""
    total = 0
    for split in SPLITS:
        images, labels = src / split, src / f"{split}annot"
        if not images.is_dir():
            continue
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for path in sorted(images.glob("*.png")):
            target = out / split / f"{path.stem}.jpg"
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"cannot read {path}")
            if not cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise SystemExit(f"cannot write {target}")
            total += target.stat().st_size
        for path in sorted(labels.glob("*.png")):
            target = out / f"{split}annot" / path.name
            shutil.copyfile(path, target)
            total += target.stat().st_size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="data/camvid")
    ap.add_argument("--out", default=".gpu/camvid")
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()
    total = pack(Path(args.src), Path(args.out), args.quality)
    print(f"{args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
