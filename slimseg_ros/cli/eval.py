"""``slimseg eval``: per-width mIoU, pixel accuracy, boundary F1 and per-class IoU on a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..widths import parse_widths
from .common import add_backend_args, input_size_arg, write_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint per width on a dataset split",
        description="Segment every image of a split at each width through the chosen runtime "
        "backend (the same path the node uses) and report mIoU, pixel accuracy, boundary F1 and "
        "per-class IoU per width. mIoU values are fractions in [0, 1].",
        epilog="example: slimseg eval --dataset camvid --data-root data/camvid "
        "--split val --widths 0.25,1.0 --json out/eval.json",
    )
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: shipped model)")
    p.add_argument("--dataset", required=True, help="camvid | cityscapes | folder | rosbag")
    p.add_argument("--data-root", required=True,
                   help="dataset root directory (rosbag: the bag directory)")
    p.add_argument("--split", default="val",
                   help="split name (default: val; rosbag: all | train | val, split in time)")
    p.add_argument("--widths", default="all", help="'all' or a comma list, e.g. 0.25,1.0")
    p.add_argument("--input-size", type=input_size_arg, default=None, metavar="HxW",
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--input-sizes", default=None, metavar="HxW[,HxW...]",
                   help="score every operating point: each width at each of these network "
                   "input sizes (the images and labels stay at their own size); the JSON gets "
                   "'points' keyed WIDTH@HxW, and 'widths' holds the first size")
    p.add_argument("--save-accuracy", action="store_true",
                   help="with --input-sizes: write the accuracy table beside the checkpoint "
                   "(<checkpoint>.points.json), which the node reads to rank its points")
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
    from ..runtime import load_point_engine
    from ..runtime.cache import file_sha256
    from ..runtime.points import point_key
    from ..sizes import MIN_INPUT_SIDE, format_size, parse_sizes

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
    if args.input_sizes and args.input_size:
        raise ValueError("give --input-size or --input-sizes, not both")
    if args.save_accuracy and not args.input_sizes:
        raise ValueError("--save-accuracy needs --input-sizes (the table is per point)")
    sizes = parse_sizes(args.input_sizes, MIN_INPUT_SIDE) if args.input_sizes else (
        [args.input_size] if args.input_size else None)
    engine = load_point_engine(args.checkpoint, input_sizes=sizes, backend=args.backend,
                               device=args.device, precision=args.precision,
                               cache_dir=args.engine_cache_dir, warmup_repeats=1,
                               log=lambda m: print(m, file=sys.stderr))
    widths = parse_widths(args.widths, engine.widths)
    if dataset.num_classes != len(engine.meta.class_names):
        raise ValueError(f"the dataset has {dataset.num_classes} classes but the model "
                         f"{len(engine.meta.class_names)}")
    n = len(dataset) if not args.max_images else min(args.max_images, len(dataset))
    per_size = {}
    for size in engine.sizes:  # one pass per size: the same frames score every point
        with progress_bar(total=n, desc=f"eval {format_size(size)}", unit="img") as bar:
            per_size[size] = score_engine(
                engine.engine(size), (dataset.load(i) for i in range(n)), widths,
                engine.meta.class_names, ignore_index=dataset.ignore_index,
                boundary_tolerance=args.boundary_tolerance, on_sample=lambda: bar.update(1),
            )
    results, count = per_size[engine.input_size]
    # the model's hash keys every table made from this file (docs/model.md checks it)
    doc = {"widths": results, "dataset": args.dataset, "split": args.split, "images": count,
           "checkpoint": _shown_path(engine.model_path),
           "model_sha256": file_sha256(engine.model_path) if engine.model_path else None,
           "backend": engine.backend, "device": engine.device,
           "precision": engine.precision, "input_size": list(engine.input_size)}
    if args.sequences:
        doc["sequences"] = options["sequences"]
    if args.input_sizes:
        doc["input_sizes"] = [list(s) for s in engine.sizes]
        doc["points"] = {point_key(float(w), size): r for size, (res, _) in per_size.items()
                         for w, r in res.items()}
        print("| point | mIoU | pixel acc | boundary F1 |\n| --- | --- | --- | --- |")
        rows = doc["points"].items()
    else:
        print("| width | mIoU | pixel acc | boundary F1 |\n| --- | --- | --- | --- |")
        rows = results.items()
    for w, r in rows:
        print(f"| {w} | {r['miou']:.4f} | {r['pixel_acc']:.4f} | {r['boundary_f1']:.4f} |")
    if args.save_accuracy:
        from ..runtime.accuracy_table import accuracy_path, make_accuracy_table

        if not engine.model_path:
            raise ValueError("--save-accuracy needs a checkpoint file")
        target = accuracy_path(engine.model_path)
        write_json(target, make_accuracy_table(doc["model_sha256"], doc["points"],
                                               args.dataset, args.split, count))
        print(f"wrote {target}")
    if args.json_out:
        write_json(args.json_out, doc)
        print(f"wrote {args.json_out}")
    return 0


def _shown_path(path: str | None) -> str | None:
    """``path`` relative to the working directory when inside it: a JSON written in a clone
    names no directory of the machine that wrote it."""
    if not path:
        return path
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path
