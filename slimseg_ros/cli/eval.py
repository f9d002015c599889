"""``slimseg eval``: per-width mIoU, pixel accuracy, boundary F1 and per-class IoU on a dataset."""

from __future__ import annotations

import argparse
import sys

from ..widths import parse_widths
from .common import add_backend_args, parse_size, write_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint per width on a dataset split",
        description="Segment every image of a split at each width through the chosen runtime "
        "backend (the same path the node uses) and report mIoU, pixel accuracy, boundary F1 and "
        "per-class IoU per width. mIoU values are fractions in [0, 1].",
        epilog="example: slimseg eval --dataset camvid --data-root ../shared/data/camvid "
        "--split val --widths 0.25,1.0 --json out/eval.json",
    )
    p.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped model)")
    p.add_argument("--dataset", required=True, help="camvid | cityscapes | folder | rosbag")
    p.add_argument("--data-root", required=True,
                   help="dataset root directory (rosbag: the bag directory)")
    p.add_argument("--split", default="val",
                   help="split name (default: val; rosbag: all | train | val, split in time)")
    p.add_argument("--widths", default="all", help="'all' or a comma list, e.g. 0.25,1.0")
    p.add_argument("--input-size", type=parse_size, default=None, metavar="HxW",
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--classes", default=None,
                   help="class spec name or YAML (folder and rosbag datasets; rosbag: camvid)")
    p.add_argument("--sequences", default=None,
                   help="camvid: score only these driving sequences, a comma list (e.g. 0006R0 "
                        "of train, when a run held it out)")
    p.add_argument("--image-topic", default=None, help="rosbag: camera topic (default: found)")
    p.add_argument("--label-topic", default=None, help="rosbag: label topic (default: found)")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N images")
    p.add_argument("--boundary-tolerance", type=float, default=2.0,
                   help="boundary F1 match distance in pixels (default: 2)")
    p.add_argument("--json", dest="json_out", default=None, help="write the results here")
    add_backend_args(p, default_backend="torch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..progress import progress_bar

    from ..data import build_dataset
    from ..eval.scoring import score_engine
    from ..runtime import load_engine

    options: dict = {"classes": args.classes} if args.classes else {}
    if args.sequences:
        if args.dataset != "camvid":
            raise ValueError("--sequences applies to --dataset camvid only")
        options["sequences"] = [s.strip() for s in args.sequences.split(",") if s.strip()]
    if args.image_topic or args.label_topic:
        if args.dataset != "rosbag":
            raise ValueError("--image-topic and --label-topic apply to --dataset rosbag only")
        options.update(image_topic=args.image_topic, labels_topic=args.label_topic)
    dataset = build_dataset(args.dataset, args.data_root, args.split, **options)
    engine = load_engine(args.checkpoint, backend=args.backend, device=args.device,
                         precision=args.precision, input_size=args.input_size,
                         cache_dir=args.engine_cache_dir, warmup_repeats=1,
                         log=lambda m: print(m, file=sys.stderr))
    widths = parse_widths(args.widths, engine.widths)
    if dataset.num_classes != len(engine.meta.class_names):
        raise ValueError(f"the dataset has {dataset.num_classes} classes but the model "
                         f"{len(engine.meta.class_names)}")
    n = len(dataset) if not args.max_images else min(args.max_images, len(dataset))
    with progress_bar(total=n, desc="eval", unit="img") as bar:
        results, count = score_engine(
            engine, (dataset.load(i) for i in range(n)), widths, engine.meta.class_names,
            ignore_index=dataset.ignore_index, boundary_tolerance=args.boundary_tolerance,
            on_sample=lambda: bar.update(1),
        )
    doc = {"widths": results, "dataset": args.dataset, "split": args.split, "images": count,
           "checkpoint": engine.model_path, "backend": engine.backend, "device": engine.device,
           "precision": engine.precision, "input_size": list(engine.input_size)}
    print("| width | mIoU | pixel acc | boundary F1 |\n| --- | --- | --- | --- |")
    for w, r in results.items():
        print(f"| {w} | {r['miou']:.4f} | {r['pixel_acc']:.4f} | {r['boundary_f1']:.4f} |")
    if args.json_out:
        write_json(args.json_out, doc)
        print(f"wrote {args.json_out}")
    return 0
