"""``slimseg train``: run a training recipe (YAML + key=value overrides)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a slimmable network (SlimSeg) from a YAML recipe",
        description="Train every width of one slimmable network per step (widest first), with "
        "stepwise downward knowledge distillation and the boundary-guided loss as the recipe "
        "says. Resumes from --out when it holds a previous run's state. For several GPUs start it "
        "with torchrun --nproc_per_node N $(which slimseg) train ...",
        epilog="example: slimseg train --config config/train_camvid.yaml "
        "--data-root data/camvid steps=4000 optim.lr=0.002",
    )
    p.add_argument("--config", required=True, help="YAML recipe, e.g. config/train_camvid.yaml")
    p.add_argument("--data-root", default=None, help="dataset root (overrides data.root)")
    p.add_argument("--out", default=None, help="run directory (overrides out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override any recipe value, e.g. loss.kd=inplace data.batch_size=16")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import load_train_config
    from ..train.loop import train

    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.out:
        overrides.append(f"out={args.out}")
    cfg = load_train_config(args.config, overrides)
    # the library logs its progress; the command shows it as plain lines on stdout
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    train_logger = logging.getLogger("slimseg_ros.train")
    train_logger.addHandler(handler)
    train_logger.setLevel(logging.INFO)
    result = train(cfg, progress=not args.no_progress)
    if result.stopped_by:
        print(f"stopped by {result.stopped_by} at step {result.steps} of {cfg.steps}; state "
              f"saved in {result.state_path}: the same command resumes", flush=True)
        # the shell convention for a process ended by a signal, so scripts see it was not done
        return 128 + int(getattr(signal, result.stopped_by))
    print(f"trained {result.steps} steps; best: {result.best_checkpoint}; last: "
          f"{result.last_checkpoint}")
    return 0
