"""Width-only against width x resolution control, by replaying a bag through the node (issue 13).

For each frame budget (the camera's rate = ``target_fps``), the bag is replayed twice through a
freshly started node: once with one input size (width-only control: today's node) and once with
several sizes (operating points). Both read the same accuracy table beside the checkpoint and,
when given, the same device latency table. Writes one JSON with mIoU (over the processed
frames), processed fraction and points used per run, and a plot of every point, the front and
the runs.

    .venv/bin/python experiments/operating_points_compare.py --bag /tmp/camvid_val_10hz \
        --bag-rate 10 --fps 10,15,20,30 --sizes 360x480,270x360,180x240 \
        --latency-table docs/operating_points/latency_table_cpu.json \
        --out docs/operating_points
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from slimseg_ros.sizes import parse_sizes

ROOT = Path(__file__).resolve().parents[1]


def replay(bag: str, speed: float, fps: float, sizes: list[str], table: str | None,
           cache: str, out: Path, backend: str, loops: int = 1) -> dict:
    flat = [v for size in parse_sizes(",".join(sizes)) for v in size]
    cmd = [str(Path(sys.executable).with_name("slimseg")), "bag", "eval", "--bag", bag,
           "--mode", "replay", "--speed", f"{speed:g}", "--target-fps", f"{fps:g}",
           "--backend", backend, "--engine-cache-dir", cache, "--loops", str(loops),
           "--param", f"input_sizes={json.dumps(flat)}", "--json", str(out)]
    if table:
        cmd += ["--param", f"latency_table={Path(table).resolve()}"]
    load_before = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"replay failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    points = {k: v["frames"] for k, v in (doc.get("points") or {}).items()}
    diag = doc.get("node_diagnostics") or {}
    return {"miou": (doc.get("overall") or {}).get("miou"),
            "processed_fraction": doc.get("processed_fraction"),
            "frames_sent": doc.get("frames_sent"), "frames_processed": doc.get("frames_processed"),
            "points": points, "latency_source": diag.get("latency_source"),
            "accuracy_source": diag.get("accuracy_source"),
            "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "command": " ".join(cmd)}


def plot(table_points: dict, accuracy: dict, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slimseg_ros.control.front import ControlPoint, pareto_front
    from slimseg_ros.runtime.points import parse_point_key

    pts, lat = [], {}
    for key, row in table_points.items():
        p = parse_point_key(key)
        if key in accuracy:
            pts.append(ControlPoint(p.width, p.size, accuracy[key], 0.0))
            lat[(p.width, p.size)] = row["p50_ms"]
    front = pareto_front(pts, lat)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    for p in pts:
        ax.scatter(lat[p.key], p.accuracy, color="tab:blue" if p in front else "tab:gray")
        ax.annotate(f"{p.width:g}@{p.size[0]}x{p.size[1]}", (lat[p.key], p.accuracy),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([lat[p.key] for p in front], [p.accuracy for p in front], color="tab:blue",
            label="Pareto front")
    ax.set_xlabel("p50 latency, ms (device latency table)")
    ax.set_ylabel("val mIoU (accuracy table)")
    ax.legend()
    budgets = sorted(results, key=float)
    for i, arm in enumerate(("width_only", "width_x_resolution")):
        bx.plot([float(b) for b in budgets], [results[b][arm]["miou"] or 0 for b in budgets],
                marker="o", label=f"{arm}: mIoU of processed frames")
        bx.plot([float(b) for b in budgets],
                [results[b][arm]["processed_fraction"] or 0 for b in budgets], marker="x",
                linestyle="--", label=f"{arm}: processed fraction")
    bx.set_xlabel("frame budget (camera rate = target_fps), fps")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bag", required=True)
    p.add_argument("--bag-rate", type=float, required=True, help="the bag's frame rate")
    p.add_argument("--fps", default="10,15,20,30")
    p.add_argument("--sizes", default="360x480,270x360,180x240")
    p.add_argument("--latency-table", default=None)
    p.add_argument("--accuracy-table", default=str(ROOT / "models/slimseg_camvid.points.json"))
    p.add_argument("--cache", default="/tmp/slimseg_points_cache")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--loops", type=int, default=1, help="play the bag N times per run")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [s.strip() for s in args.sizes.split(",")]
    results: dict = {}
    for fps in [float(f) for f in args.fps.split(",")]:
        speed = fps / args.bag_rate
        key = f"{fps:g}"
        results[key] = {}
        for arm, arm_sizes in (("width_only", sizes[:1]), ("width_x_resolution", sizes)):
            results[key][arm] = replay(args.bag, speed, fps, arm_sizes, args.latency_table,
                                       args.cache, out / f"replay_{arm}_{key}fps.json",
                                       args.backend, args.loops)
            print(json.dumps({"fps": key, "arm": arm, **{
                k: v for k, v in results[key][arm].items() if k != "command"}}), flush=True)
    (out / "comparison.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.latency_table:
        table = json.loads(Path(args.latency_table).read_text())["points"]
        accuracy = {k: v["miou"] for k, v in
                    json.loads(Path(args.accuracy_table).read_text())["points"].items()}
        plot(table, accuracy, results, out / "operating_points.png")


if __name__ == "__main__":
    main()
