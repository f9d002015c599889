"""``slimseg recalibrate``: re-estimate BN statistics on the robot's own frames (domain shift)."""

from __future__ import annotations

import argparse
import sys

from ..widths import parse_widths

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recalibrate",
        help="re-estimate each width's BN statistics on frames from a bag or dataset",
        description="When the robot's camera differs from the training camera (exposure, colour, "
        "lens), re-estimate every width's BatchNorm running statistics on its own frames, with "
        "the weights unchanged. Frames need no labels; they are spread evenly over the source "
        "and cut into random crops as in training (no colour jitter), and the result is written "
        "as a new checkpoint (the source is recorded in its metadata). Check it with slimseg "
        "eval before deploying.",
        epilog="example: slimseg recalibrate --bag robot_run --frames 200 "
        "--out models/slimseg_robot.safetensors",
    )
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: shipped model)")
    p.add_argument("--bag", default=None, help="rosbag2 directory with the camera topic")
    p.add_argument("--image-topic", default=None, help="camera topic in --bag (default: found)")
    p.add_argument("--dataset", default=None,
                   help="instead of --bag: camvid | cityscapes | folder")
    p.add_argument("--data-root", default=None, help="with --dataset: its root directory")
    p.add_argument("--split", default="train", help="with --dataset: split (default: train)")
    p.add_argument("--classes", default=None, help="with --dataset folder: classes YAML")
    p.add_argument("--frames", type=int, default=200,
                   help="frames to use, spread over the source (default: 200)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per batch (default: 8)")
    p.add_argument("--widths", default="all", help="'all' or a comma list, e.g. 0.25,1.0")
    p.add_argument("--full-frames", action="store_true",
                   help="feed whole frames resized to the input size instead of training-like "
                   "random crops (measured worse; see docs/data.md)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", required=True, help="the recalibrated checkpoint to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..model.checkpoint import read_metadata
    from ..runtime import default_model_path
    from ..train.recalibrate import recalibrate_checkpoint

    if (args.bag is None) == (args.dataset is None):
        raise ValueError("give the frames with exactly one of --bag or --dataset")
    if args.frames < 2:
        raise ValueError("--frames must be at least 2")
    checkpoint = args.checkpoint or default_model_path()
    if checkpoint is None:
        raise ValueError("no --checkpoint and no shipped model installed")
    meta = read_metadata(checkpoint)
    widths = parse_widths(args.widths, meta.config.widths)
    if args.bag is not None:
        from ..data.rosbag import RosbagFrames

        frames = RosbagFrames(args.bag, "all", image_topic=args.image_topic,
                              require_labels=False)
        source = f"bag {args.bag} ({frames.topics.image})"
    else:
        from ..data import build_dataset

        if args.data_root is None:
            raise ValueError("--dataset needs --data-root")
        options = {"classes": args.classes} if args.classes else {}
        frames = build_dataset(args.dataset, args.data_root, args.split, **options)
        source = f"{args.dataset} {args.split} ({args.data_root})"
    result = recalibrate_checkpoint(
        checkpoint, frames, args.out, frames=args.frames, batch_size=args.batch_size,
        widths=widths, full_frames=args.full_frames, source=source, threads=args.threads,
        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"recalibrated widths {', '.join(f'{w:g}' for w in result.widths)} on "
          f"{result.frames} frames of {source} in {result.seconds:.1f} s; wrote {result.out}")
    return 0
