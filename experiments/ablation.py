"""SlimSeg's two claims at a budget that can tell the methods apart (one command, one JSON).

Claim 1: one slimmable network trained with stepwise downward KD is at least as good at every
width as independently trained networks of the same widths. Claim 2: the boundary-guided loss
improves each width, mostly near borders (so boundary F1 and interior mIoU are reported apart).

Arms (same data order per seed, crops, optimiser, schedule and steps):
  slimseg        slimmable, stepwise downward KD + boundary-guided loss (the method)
  stepwise_kd    slimmable, stepwise KD, no boundary term (isolates claim 2)
  ce_only        slimmable, cross-entropy only
  inplace_kd     slimmable, KD from the widest width + boundary term (isolates the topology)
  independent    one network per width, trained alone with cross-entropy

Compute: a slimmable step runs every width forward and backward once, so four independent
networks at N steps each cost the same FLOPs as one slimmable run of N steps: equal steps is also
equal total compute (KD adds no forward pass). Minutes of training per run (over all its
sessions) are recorded too.

Writes OUT/runs.json (every run, resumable) and docs/ablation_results.json-style aggregates:
  {"arms": {ARM: {"seeds": [..], "steps": N, "widths": {"0.25": {"miou_mean", "miou_std",
   "boundary_f1_mean", "boundary_f1_std", "interior_miou_mean", "interior_miou_std"}}}},
   "verdicts": {CLAIM: {"arm", "reference", "metric", "widths": {"0.25": {"diff_mean", "diffs",
   "seeds", "verdict"}}}}}   (verdict: better | worse | not separable | one seed)
--report-only aggregates the finished runs in OUT/runs.json without training anything.
Usage:
  python experiments/ablation.py --data-root data/camvid --out runs/ablation \\
      --seeds 0,1,2 --steps 3000 [--jobs 4] [--json docs/ablation_results.json] [key=value ...]
Defaults are the CPU protocol (half resolution: 180x240 evaluation, 128x160 crops); on a GPU
pass e.g. data.crop_size=[360,480] data.val_size=[360,480] data.scale_range=[0.5,1.5].
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from slimseg_ros.eval.study import markdown_table, mean_spread, paired_verdict
from slimseg_ros.model.checkpoint import read_metadata

ARMS: dict[str, list[str]] = {
    "slimseg": ["loss.kd=stepwise", "loss.boundary_weight=1.0"],
    "stepwise_kd": ["loss.kd=stepwise", "loss.boundary_weight=0.0"],
    "ce_only": ["loss.kd=none", "loss.boundary_weight=0.0"],
    "inplace_kd": ["loss.kd=inplace", "loss.boundary_weight=1.0"],
    "independent": ["loss.kd=none", "loss.boundary_weight=0.0"],
}
WIDTHS = (0.25, 0.5, 0.75, 1.0)
METRICS = ("miou", "boundary_f1", "interior_miou")
# (claim, arm, reference arm, metric): the comparisons a verdict is given for
CLAIMS = (
    ("1: slimmable vs independent", "slimseg", "independent", "miou"),
    ("2: boundary loss, mIoU", "slimseg", "stepwise_kd", "miou"),
    ("2: boundary loss, near borders", "slimseg", "stepwise_kd", "boundary_f1"),
    ("2: boundary loss, inside regions", "slimseg", "stepwise_kd", "interior_miou"),
)


def runs_of(arm: str, seeds: list[int]) -> list[tuple[str, str, int, list[str]]]:
    """(run name, arm, seed, extra overrides) of an arm: one run, or one per width."""
    out = []
    for seed in seeds:
        if arm == "independent":
            out += [(run_name(arm, seed, w), arm, seed, [f"train_widths=[{w}]"]) for w in WIDTHS]
        else:
            out.append((run_name(arm, seed, 1.0), arm, seed, []))
    return out


def pending_runs(arms: list[str], seeds: list[int], done: set[str]
                 ) -> list[tuple[str, str, int, list[str]]]:
    """The runs still to do, seed-major: a session that ends early leaves whole seeds."""
    return [r for seed in seeds for arm in arms for r in runs_of(arm, [seed]) if r[0] not in done]


def train_run(name: str, overrides: list[str], out: Path, config: str) -> dict:
    """One `slimseg train` in its own process; its final per-width validation."""
    run_dir = out / name
    log = out / f"{name}.log"
    cmd = [sys.executable, "-m", "slimseg_ros.cli.main", "train", "--config", config,
           *overrides, f"out={run_dir}"]
    with open(log, "a") as fh:
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"{name} failed (exit {code}); see {log}")
    history = json.loads((run_dir / "history.json").read_text())
    # the run's own training time over all its sessions (resumes, pauses between them excluded),
    # as its last checkpoint's metadata records it
    minutes = read_metadata(run_dir / "last.safetensors").training["wall_clock_min"]
    return {"minutes": minutes, "val": history[-1]["widths"]}


def run_name(arm: str, seed: int, width: float) -> str:
    """The run that scores ``arm`` at ``width`` for ``seed`` (one run per width if independent)."""
    return f"independent_w{width}_s{seed}" if arm == "independent" else f"{arm}_s{seed}"


def score_of(runs: dict, arm: str, seed: int, width: float) -> dict | None:
    """The final validation of ``arm`` at ``width`` for ``seed``, or None if not run yet."""
    return runs.get(run_name(arm, seed, width), {}).get("val", {}).get(str(float(width)))


def aggregate(runs: dict, arms: list[str], seeds: list[int], steps: int) -> dict:
    doc: dict = {"arms": {}}
    for arm in arms:
        widths: dict = {}
        for w in WIDTHS:
            key = str(float(w))
            done = [d for seed in seeds if (d := score_of(runs, arm, seed, w)) is not None]
            if not done:
                continue
            entry = {}
            for metric in METRICS:
                values = [float(d[metric]) for d in done if d.get(metric) is not None]
                entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_spread(values)
            widths[key] = entry
        if widths:
            used = [s for s in seeds if any(score_of(runs, arm, s, w) for w in WIDTHS)]
            doc["arms"][arm] = {"seeds": used, "steps": steps, "widths": widths}
    return doc


def compare(runs: dict, arm: str, reference: str, metric: str, seeds: list[int]) -> dict:
    """Per width: seed-paired differences arm - reference and a verdict
    (:func:`~slimseg_ros.eval.study.paired_verdict`)."""
    out = {}
    for w in WIDTHS:
        key = str(float(w))
        pairs = []
        for seed in seeds:
            a = (score_of(runs, arm, seed, w) or {}).get(metric)
            b = (score_of(runs, reference, seed, w) or {}).get(metric)
            if a is not None and b is not None:
                pairs.append((float(a), float(b)))
        if pairs:
            out[key] = paired_verdict(pairs)
    return out


def verdicts(runs: dict, seeds: list[int]) -> dict:
    return {claim: {"arm": arm, "reference": ref, "metric": metric,
                    "widths": compare(runs, arm, ref, metric, seeds)}
            for claim, arm, ref, metric in CLAIMS}


def verdict_table(found: dict) -> str:
    rows = [[claim, f"{v['arm']} - {v['reference']}", v["metric"],
             *(f"{e['diff_mean']:+.3f} {e['verdict']}" if (e := v["widths"].get(str(float(w))))
               else "-" for w in WIDTHS)] for claim, v in found.items()]
    return markdown_table(["claim", "arm - reference", "metric",
                           *(str(float(w)) for w in WIDTHS)], rows)


def table(doc: dict, metric: str) -> str:
    arms = list(doc["arms"])
    rows = []
    for w in WIDTHS:
        key = str(float(w))
        cells = []
        for arm in arms:
            e = doc["arms"][arm]["widths"].get(key)
            cells.append("-" if not e or e[f"{metric}_mean"] is None else
                         f"{e[f'{metric}_mean']:.3f} ± {e[f'{metric}_std']:.3f}")
        rows.append([key, *cells])
    return markdown_table(["width", *arms], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="config/train_camvid.yaml")
    ap.add_argument("--data-root", default="data/camvid")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (e.g. on one big GPU)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    ap.add_argument("--json", default=None, help="also write the aggregate here")
    ap.add_argument("--report-only", action="store_true",
                    help="aggregate the finished runs only; train nothing")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    common = [f"data.root={args.data_root}", f"steps={args.steps}", f"threads={args.threads}",
              "data.crop_size=[128,160]", "data.scale_range=[0.4,0.8]", "data.val_size=[180,240]",
              "val_every=0", "checkpoint_every=100", *args.overrides]
    runs_path = out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else {}
    todo = [] if args.report_only else pending_runs(arms, seeds, set(runs))
    lock = threading.Lock()  # runs finish in several threads; one writes runs.json at a time

    def one(item: tuple[str, str, int, list[str]]) -> None:
        name, arm, seed, extra = item
        result = train_run(name, common + ARMS[arm] + extra + [f"seed={seed}"], out, args.config)
        with lock:
            # re-read first: another process (other arms, same --out) may have added runs
            if runs_path.is_file():
                runs.update({k: v for k, v in json.loads(runs_path.read_text()).items()
                             if k not in runs})
            runs[name] = {"arm": arm, "seed": seed, **result}
            tmp = runs_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(runs, indent=2))
            tmp.replace(runs_path)
        print(f"{name}: {result['minutes']} min " + json.dumps(
            {w: round(v["miou"], 4) for w, v in result["val"].items()}), flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, todo))
    doc = aggregate(runs, arms, seeds, args.steps)
    doc["protocol"] = {"steps": args.steps, "seeds": seeds, "overrides": common,
                       "config": args.config}
    doc["verdicts"] = verdicts(runs, seeds)
    (out / "ablation_results.json").write_text(json.dumps(doc, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    for metric in METRICS:
        print(f"\n{metric} (mean ± std over seeds)\n" + table(doc, metric))
    print("\nverdicts (seed-paired mean difference)\n" + verdict_table(doc["verdicts"]))


if __name__ == "__main__":
    main()
