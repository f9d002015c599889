"""``slimseg adapt``: adapt a model to a robot's camera from its unlabelled frames."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..train.adapt_settings import AdaptSettings as recipe  # torch-free: the defaults

    p = subparsers.add_parser(
        "adapt",
        help="adapt a model to a robot's camera from unlabelled frames (BN recalibration + MGD)",
        description="Fit a model to the robot's own camera without labels: re-estimate every "
        "width's BN statistics on the frames, then train on them with Multi-Granularity "
        "Distillation: the recalibrated input model (frozen) and a weight average of the "
        "adapting model label CutMix-mixed frames where they are confident (and each class its "
        "most confident pixels, --class-fraction), and every width learns from those pseudo "
        "labels (SlimSeg loss) and from the teachers' region self-similarity and image-level "
        "predictions (--teacher: a stronger network takes the input model's place). Three "
        "runs of 33 steps of SGD by default (longer drifts), each from the recalibrated "
        "model with its own seed; the result is their weights averaged, BN statistics "
        "re-estimated for the average. A fifth of the frames (--check-fraction) is held back "
        "from all of that: on them each width keeps its adapted weights only where they agree "
        "better with a reference network (the teacher) than the input model and its "
        "recalibration do, and otherwise the better of those two (it says which); then what it "
        "chose is made again from every frame, the held-back ones too (--no-refit: write "
        "what was checked; half the runtime). Writes a new "
        "checkpoint whose metadata records what it was adapted on and what the check chose. "
        "With --eval-bag (a labelled bag of the same camera) it prints mIoU per width before, "
        "after recalibration only, adapted at every width, and as kept by the check.",
        epilog="example: slimseg adapt --bag robot_run --out models/slimseg_robot.safetensors "
        "--eval-bag robot_labelled",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", default=None, help="rosbag2 directory with the robot's camera")
    src.add_argument("--images", default=None, help="instead of --bag: a folder of images")
    p.add_argument("--image-topic", default=None, help="camera topic in --bag (default: found)")
    p.add_argument("--checkpoint", default=None, help="model to adapt (default: shipped model)")
    p.add_argument("--out", required=True, help="the adapted checkpoint to write")
    p.add_argument("--steps", type=int, default=recipe.steps,
                   help=f"adaptation steps (default: {recipe.steps}; more steps drift further, "
                   "docs/log/adapt.md); 0 = until --minutes")
    p.add_argument("--minutes", type=float, default=recipe.minutes,
                   help="also stop after this many minutes of wall clock (default: 0 = no limit)")
    p.add_argument("--confidence", type=float, default=recipe.confidence,
                   help="ignore pseudo labels whose mean teacher probability is lower "
                   f"(default: {recipe.confidence})")
    p.add_argument("--class-fraction", type=float, default=recipe.class_fraction,
                   help="but keep each predicted class's most confident fraction of pixels "
                   "whatever --confidence says (class-balanced, CBST, so thin classes keep "
                   f"labels; default: {recipe.class_fraction}; 0 = the threshold alone)")
    p.add_argument("--teacher", default=None,
                   help="a stronger checkpoint (e.g. models/teacher_camvid.safetensors) as the "
                   "external teacher, recalibrated on the same frames (default: the input model)")
    p.add_argument("--lr", type=float, default=recipe.lr,
                   help=f"learning rate (default: {recipe.lr:g})")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=recipe.optimizer,
                   help="SGD with momentum 0.9 (default), which moves each weight in proportion "
                   "to its gradient, or AdamW (give it a smaller --lr, e.g. 2e-4)")
    p.add_argument("--batch-size", type=int, default=recipe.batch_size,
                   help=f"pairs of frames per step (default: {recipe.batch_size})")
    p.add_argument("--distill", action="store_true",
                   help="width 1.0 also distils --teacher's soft predictions on every pixel")
    p.add_argument("--runs", type=int, default=recipe.runs,
                   help="independent runs (seeds --seed, --seed + 1, ...) whose weights are "
                   "averaged, BN statistics then re-estimated: steadier than one run, whose "
                   f"result moves with its seed (default: {recipe.runs})")
    p.add_argument("--teacher-flip", action="store_true",
                   help="teachers also predict each frame mirrored; pseudo labels from the "
                   "two views' mean (one more teacher forward per frame)")
    p.add_argument("--keep", choices=("average", "student"), default=recipe.keep,
                   help="each run keeps the adapting weights after its last step (default) or "
                   "their moving average (starts at the recalibrated model and moves slowly: "
                   "smaller gains and losses)")
    p.add_argument("--params", choices=("all", "norm"), default=recipe.params,
                   help="what learns: every weight (default), or only the BN scales and shifts, "
                   "which each width owns, so the label-free check keeps or drops each width's "
                   "adaptation alone")
    p.add_argument("--bn-statistics", choices=("batch", "frozen"),
                   default="frozen" if recipe.freeze_bn_statistics else "batch",
                   help="while adapting, normalise with each batch's statistics (default) or "
                   "keep the recalibrated ones")
    p.add_argument("--check-fraction", type=float, default=recipe.check_fraction,
                   help="frames held back (in blocks of 10 consecutive) for the label-free "
                   f"check (default: {recipe.check_fraction}; 0 = no check, every width keeps "
                   "its adapted weights)")
    p.add_argument("--check-reference", default=None,
                   help="the network the check compares with (default: --teacher, else the "
                   "shipped teacher)")
    p.add_argument("--check-margin", type=float, default=recipe.check_margin,
                   help="agreement mIoU by which adapted weights must beat the previous ones "
                   f"(default: {recipe.check_margin:g})")
    p.add_argument("--no-refit", dest="refit", action="store_false", default=recipe.refit,
                   help="write the weights the check chose as they were checked, adapted "
                   "without the held-back frames, instead of making them again from every "
                   "frame (half the runtime when adapted weights are kept)")
    p.add_argument("--eval-bag", default=None,
                   help="a labelled bag of the same camera to score before and after")
    p.add_argument("--label-topic", default=None,
                   help="label topic in --eval-bag (default: found)")
    p.add_argument("--eval-topic", default=None, help="image topic in --eval-bag (default: found)")
    p.add_argument("--threads", type=int, default=recipe.threads,
                   help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=recipe.seed)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.unlabeled import open_unlabeled
    from ..model.checkpoint import load_checkpoint
    from ..runtime import default_model_path
    from ..train.adapt import AdaptSettings, adapt_checkpoint

    if not 0.0 <= args.confidence < 1.0:
        raise ValueError("--confidence must be in [0, 1)")
    if args.distill and not args.teacher:
        raise ValueError("--distill needs --teacher (the network to distil)")
    if not 0.0 <= args.class_fraction <= 1.0:
        raise ValueError("--class-fraction must be in [0, 1]")
    # checks its own values (the steps/minutes budget among them) before any frame is read
    settings = AdaptSettings(minutes=args.minutes, steps=args.steps, batch_size=args.batch_size,
                             lr=args.lr, confidence=args.confidence, seed=args.seed,
                             class_fraction=args.class_fraction, teacher=args.teacher,
                             distill=args.distill, teacher_flip=args.teacher_flip,
                             threads=args.threads, keep=args.keep,
                             optimizer=args.optimizer, runs=args.runs, params=args.params,
                             freeze_bn_statistics=args.bn_statistics == "frozen",
                             check_fraction=args.check_fraction,
                             check_reference=args.check_reference,
                             check_margin=args.check_margin, refit=args.refit)
    checkpoint = args.checkpoint or default_model_path()
    if checkpoint is None:
        raise ValueError("no --checkpoint and no shipped model installed")
    source_path = args.bag or args.images
    frames = open_unlabeled(source_path, image_topic=args.image_topic)
    source = f"{'bag' if args.bag else 'images'} {source_path}"
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    evaluation = None
    if args.eval_bag:
        from ..data.rosbag import RosbagFrames

        evaluation = RosbagFrames(args.eval_bag, "all", image_topic=args.eval_topic,
                                  labels_topic=args.label_topic)
    result = adapt_checkpoint(checkpoint, frames, args.out, settings, source, log=say)
    runs = f"{result.runs} runs of " if result.runs > 1 else ""
    for line in result.decision.lines() if result.decision else ():
        print(line)
    refit = " (after the check, again from every frame)" if result.checked else ""
    print(f"adapted on {result.frames} frames of {source}{refit}: {runs}"
          f"{result.steps} steps in "
          f"{result.seconds / 60:.1f} min, "
          f"{result.pseudo_labelled:.0%} of pixels pseudo-labelled; "
          f"wrote {result.out}")
    if evaluation is not None:
        from ..train.validate import validate

        model, meta = load_checkpoint(result.out)
        states = {"before": result.candidates["input"],
                  "recalibrated only": result.candidates["recalibrated"],
                  "adapted (every width)": result.candidates["adapted"],
                  "kept": {k: v.clone() for k, v in model.state_dict().items()}}
        if result.checked:  # what the check saw, beside what was made again from every frame
            states["kept, as checked"] = result.checked
        rows = {}
        for name, state in states.items():
            model.load_state_dict(state)
            rows[name] = validate(model, evaluation, model.widths, meta)
        print(f"mIoU on {args.eval_bag} ({len(evaluation)} frames)")
        print("| width | " + " | ".join(rows) + " |\n|" + " --- |" * (len(rows) + 1))
        for w in rows["before"]:
            print(f"| {w} | " + " | ".join(f"{rows[n][w]['miou']:.4f}" for n in rows) + " |")
    return 0
