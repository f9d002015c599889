"""``slimseg demo``: the whole product on the CPU in about a minute, from a fresh clone.

Builds a small rosbag from the CamVid frames shipped in ``slimseg_ros/assets/camvid_sample``,
starts the ``slimseg`` node in adaptive mode with the shipped model, and replays the bag in real
time over DDS (looped to fill ``--duration``) while the battery drains from 100% to 10% and,
a quarter of the way in, the frame-rate budget tightens: ``target_fps`` is raised from a lax
value to the camera's rate through the node's parameter service (what ``ros2 param set`` does).
Prints frames, the width timeline with the node's reasons, fps, latency and mIoU per width, and
writes the report with plots.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from pathlib import Path

from .bag import command_line
from .main import UserError


__all__ = ["register", "run", "sample_root"]

RANDOM_BANNER = (
    "RANDOM MODEL: the default model slimseg_camvid.safetensors is not installed, so the demo "
    "runs a randomly initialised network. Widths, timing and the width controller are real; "
    "the mIoU numbers are meaningless.")


def sample_root() -> Path:
    """The shipped CamVid excerpt (SegNet layout: ``val/`` and ``valannot/``)."""
    return Path(__file__).resolve().parents[1] / "assets" / "camvid_sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="replay shipped CamVid frames through the adaptive node (CPU, ~1 minute)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        epilog="example: slimseg demo --out demo_out --duration 30",
    )
    p.add_argument("--out", default="out/demo", metavar="DIR",
                   help="output directory: bag, report.md, metrics.json, plots, node.log "
                   "(default: out/demo)")
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: the shipped model; a clearly labelled "
                   "random model if that is missing)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="seconds of replay (default: 30)")
    p.add_argument("--rate", type=float, default=15.0, metavar="HZ",
                   help="camera rate of the demo bag (default: 15, CamVid's real frame rate)")
    p.add_argument("--start-fps", type=float, default=5.0,
                   help="the node's target_fps at the start (default: 5, a lax budget)")
    p.add_argument("--tighten-at", type=float, default=0.25, metavar="FRACTION",
                   help="when target_fps is raised to the camera rate, as a fraction of the "
                   "run (default: 0.25)")
    p.add_argument("--battery", default="1.0:0.1", metavar="START:END",
                   help="battery fraction at the start and at the end (default: 1.0:0.1)")
    p.add_argument("--backend", default="torch", help="the node's backend (default: torch)")
    p.add_argument("--device", default="cpu", help="the node's device (default: cpu)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS_DOMAIN_ID for the demo (default: a random one in 215..232, so "
                   "two demos or a robot on this machine never mix their topics)")
    p.set_defaults(func=run)


def _model(args: argparse.Namespace, out: Path) -> tuple[str, bool]:
    """(checkpoint path, is_random)."""
    from ..runtime.loader import default_model_path

    if args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise UserError(f"checkpoint {args.checkpoint} does not exist")
        return str(Path(args.checkpoint).resolve()), False
    found = default_model_path()
    if found is not None:
        return str(found), False
    from ..model.checkpoint import save_random_checkpoint

    path = save_random_checkpoint(out / "random_model.safetensors")
    return str(path.resolve()), True


def run(args: argparse.Namespace) -> int:
    from ..data import build_dataset
    from ..eval.bagio import parse_battery, write_dataset_bag
    from ..eval.replay_plan import ParamEvent, ReplayConfig
    from ..eval.report import format_summary, write_report
    from ..ros.client.replay import run_replay

    if not args.duration > 0 or not args.rate > 0 or not args.start_fps > 0:
        raise UserError("--duration, --rate and --start-fps must be > 0")
    if not 0 <= args.tighten_at < 1:
        raise UserError(f"--tighten-at is a fraction of the run in [0, 1), got {args.tighten_at}")
    battery = parse_battery(args.battery)
    # The demo publishes /camera/image_raw and /labels: keep that off the robot's network
    # (Jazzy and newer read the first variable, Humble the second; both pass to the node).
    if not {"ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY"} & set(os.environ):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
    root = sample_root()
    if not (root / "val").is_dir():
        raise UserError(f"the sample frames are missing: {root}/val (a broken install?)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, is_random = _model(args, out)
    say = _printer()
    # 215..232: valid on Linux without touching the ephemeral port range (ROS 2 docs)
    domain = args.domain_id if args.domain_id is not None else random.randint(215, 232)
    if is_random:
        say("=" * 79 + "\n" + RANDOM_BANNER + "\n" + "=" * 79)

    dataset = build_dataset("camvid", root, "val")
    bag = out / "bag"
    info = write_dataset_bag(dataset, bag, rate_hz=args.rate, overwrite=True)
    n = len(dataset)
    loops = max(1, math.ceil(args.duration * args.rate / n))
    duration = loops * n / args.rate
    tighten_t = round(args.tighten_at * duration, 2)
    say(f"demo bag: {info.path} ({n} CamVid frames at {args.rate:g} Hz); replaying it {loops} "
        f"times ({duration:.0f} s) with the battery draining {battery[0]:.0%} -> "
        f"{battery[1]:.0%}; target_fps {args.start_fps:g} -> {args.rate:g} at {tighten_t:g} s; "
        f"ROS domain {domain}")
    config = ReplayConfig(
        loops=loops, model_path=model, adaptive=True, target_fps=args.start_fps,
        node_params={"backend": args.backend, "device": args.device},
        battery=battery, param_events=(ParamEvent(tighten_t, "target_fps", float(args.rate)),),
        domain_id=domain, node_log=out / "node.log")
    result = run_replay(bag, config, progress=True, log=say)
    doc = result.doc
    doc["demo"] = {"random_model": is_random, "sample_frames": n, "rate_hz": args.rate,
                   "domain_id": domain,
                   "tighten_at_s": tighten_t, "battery": list(battery)}
    if is_random:
        doc["warning"] = RANDOM_BANNER
    command = command_line()
    paths = write_report(doc, result.scores, out, title="slimseg demo: adaptive width on CamVid",
                         command=command)
    print()
    if is_random:
        print(RANDOM_BANNER)
    print(format_summary(doc))
    print(f"\nreport: {out / 'report.md'} (plots: "
          f"{', '.join(p.name for p in paths if p.suffix == '.png')})")
    return 0 if doc.get("frames_processed") else 1


def _printer():
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return say
