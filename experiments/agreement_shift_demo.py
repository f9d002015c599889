"""Label-free agreement on a replay whose camera changes half way (issue 13, part 7).

Writes a bag of CamVid val (101 frames, 10 Hz) followed by the same frames through the shifted
camera of docs/log/adapt.md (gamma 1.8, channel gains 0.75/0.85/1.1, clipped), then replays it
through the node:

1. ``pinned``: a held cheap point (``--width``, ``resolution``) with ``agreement_period_s``
   1 s: the agreement timeline before and after the change (the node's log, with any drop
   warning, in ``agreement_pinned_report/node.log``);
2. ``adaptive_on`` / ``adaptive_off``: adaptive control at ``--adaptive-fps`` with agreement
   checks every 1 s and with none: processed fraction and mIoU side by side (the checks run
   only in idle time, so they should cost no processed frames).

    .venv/bin/python experiments/agreement_shift_demo.py --data-root data/camvid \
        --out docs/operating_points
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from slimseg_ros.data import build_dataset
from slimseg_ros.data.camera_shifts import shift_a
from slimseg_ros.eval import bagio


def make_bag(root: str, out: Path, shifted_repeats: int) -> int:
    data = build_dataset("camvid", root, "val")
    frames = [data.load(i) for i in range(len(data))]
    both = [(rgb, lab) for rgb, lab in frames] + [
        (shift_a(rgb), lab) for _ in range(shifted_repeats) for rgb, lab in frames]
    bagio.write_frames_bag(out, both, rate_hz=10, overwrite=True)
    return len(frames)


def replay(bag: Path, out: Path, args: list[str]) -> dict:
    cmd = [str(Path(sys.executable).with_name("slimseg")), "bag", "eval", "--bag", str(bag),
           "--mode", "replay", "--backend", "onnxruntime", "--engine-cache-dir",
           "/tmp/slimseg_points_cache", "--json", str(out), *args]
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"replay failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    return {"command": " ".join(cmd), "loadavg_1min": [round(load, 2),
                                                        round(os.getloadavg()[0], 2)],
            "processed_fraction": doc["processed_fraction"],
            "miou": (doc.get("overall") or {}).get("miou"),
            "points": {k: v["frames"] for k, v in (doc.get("points") or {}).items()},
            "agreement_timeline": doc.get("agreement_timeline")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bag", default="/tmp/camvid_val_shift_bag")
    p.add_argument("--sizes", default="[360, 480, 270, 360, 180, 240]")
    p.add_argument("--pin", default="0.5:[180, 240]", help="WIDTH:[H, W] of the pinned run")
    p.add_argument("--target-fps", type=float, default=10.0, help="of the pinned run")
    p.add_argument("--adaptive-fps", type=float, default=20.0,
                   help="camera rate and target of the adaptive runs (the bag is 10 Hz: "
                   "played at adaptive_fps / 10 speed)")
    p.add_argument("--shifted-repeats", type=int, default=2,
                   help="the shifted camera plays val this many times after the normal one")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = make_bag(args.data_root, Path(args.bag), args.shifted_repeats)
    change_s = n / 10.0
    width, size = args.pin.split(":", 1)
    sizes = ["--param", f"input_sizes={args.sizes}"]
    results = {"change_at_s": change_s, "frames_per_half": n}
    results["pinned"] = replay(Path(args.bag), out / "agreement_pinned.json", [
        *sizes, "--width", width, "--param", f"resolution={size}",
        "--param", "agreement_period_s=1.0", "--target-fps", f"{args.target_fps:g}",
        "--report", str(out / "agreement_pinned_report")])
    for name, period in (("adaptive_on", 1.0), ("adaptive_off", 0.0)):
        results[name] = replay(Path(args.bag), out / f"agreement_{name}.json", [
            *sizes, "--param", f"agreement_period_s={period}",
            "--target-fps", f"{args.adaptive_fps:g}", "--speed", f"{args.adaptive_fps / 10:g}",
            "--report", str(out / f"agreement_{name}_report")])
    timeline = results["pinned"]["agreement_timeline"] or []
    before = [a for t, a, _ in timeline if t < change_s]
    after = [a for t, a, _ in timeline if t >= change_s + 2.0]
    results["pinned_agreement_mean"] = {
        "before_change": float(np.mean(before)) if before else None,
        "after_change": float(np.mean(after)) if after else None}
    (out / "agreement_shift.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("pinned",)} | {
        "pinned": {k: v for k, v in results["pinned"].items() if k != "agreement_timeline"}},
        indent=1))


if __name__ == "__main__":
    main()
