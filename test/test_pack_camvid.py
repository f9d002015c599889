"""tools/dev/pack_camvid.py: a packed CamVid root loads like the original, labels bit-exact."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from script_utils import load_script
from slimseg_ros.data import build_dataset


def test_packed_frames_load_with_identical_labels_and_close_images(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "packed"
    rng = np.random.default_rng(0)
    for split, names in (("train", ["0001TP_000030", "0006R0_000060"]),
                         ("val", ["0016E5_000090"])):
        (src / split).mkdir(parents=True)
        (src / f"{split}annot").mkdir()
        for name in names:
            # smooth images (as photographs are), so JPEG's error is small
            base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (96, 72),
                              interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(src / split / f"{name}.png"), base)
            cv2.imwrite(str(src / f"{split}annot" / f"{name}.png"),
                        rng.integers(0, 12, (72, 96), dtype=np.uint8))
    written = load_script("tools/dev/pack_camvid.py").pack(src, out, quality=85)
    assert written > 0 and sorted(p.name for p in (out / "train").iterdir()) == [
        "0001TP_000030.jpg", "0006R0_000060.jpg"]
    for split in ("train", "val"):
        original = build_dataset("camvid", str(src), split)
        packed = build_dataset("camvid", str(out), split)
        assert len(packed) == len(original)
        for i in range(len(original)):
            (img_a, lab_a), (img_b, lab_b) = original.load(i), packed.load(i)
            assert np.array_equal(lab_a, lab_b)
            assert np.abs(img_a.astype(int) - img_b.astype(int)).mean() < 3.0
    # sequences still select by file name
    held = build_dataset("camvid", str(out), "train", sequences=["0006R0"])
    assert len(held) == 1
