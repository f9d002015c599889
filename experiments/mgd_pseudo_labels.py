"""How good are MGD's pseudo labels on the frames whose labels a partition withheld?

Every teacher (a checkpoint of this package, at its widest width) predicts each unlabelled frame
of the partition at full resolution; the script scores each teacher's thresholded argmax, and
their average (MGD's targets), against the withheld labels: coverage, accuracy and per-class
precision/recall at each threshold (slimseg_ros.eval.pseudo_labels), plus how often the first two
teachers agree and how right they are where they agree and where not. ``--reference`` teachers
are scored alone and kept out of the average (e.g. a teacher that saw the withheld labels).

    python experiments/mgd_pseudo_labels.py --partition runs/distill/partition_quarter.json \\
        --teacher quarter_s0=runs/distill/quarter_s0/last.safetensors \\
        --teacher quarter_s1=runs/distill/quarter_s1/last.safetensors \\
        --reference teacher_camvid=models/teacher_camvid.safetensors --out docs/mgd/pl.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from slimseg_ros.data import build_dataset
from slimseg_ros.data.transforms import to_tensors
from slimseg_ros.eval.pseudo_labels import PseudoLabelQuality, TeacherAgreement
from slimseg_ros.model.checkpoint import load_checkpoint
from slimseg_ros.train.teacher import Teacher


def _named(items: list[str], what: str) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{what} must be NAME=CHECKPOINT, got {item!r}")
        out[name] = Path(path)
    return out


def _probabilities(teacher: Teacher, x: torch.Tensor) -> np.ndarray:
    """Class probabilities (C, H, W) of one normalised (3, H, W) frame at its own size."""
    with torch.no_grad():
        return teacher(x[None]).logits_at(x.shape[-2:]).softmax(1)[0].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partition", required=True, help="a partition JSON written by training")
    ap.add_argument("--data-root", default=None, help="default: the root the partition names")
    ap.add_argument("--teacher", action="append", default=[], help="NAME=CHECKPOINT (repeat)")
    ap.add_argument("--reference", action="append", default=[],
                    help="NAME=CHECKPOINT scored alone, outside the average")
    ap.add_argument("--thresholds", default="0,0.7,0.9")
    ap.add_argument("--every", type=int, default=1, help="score every n-th unlabelled frame")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teachers, references = _named(args.teacher, "--teacher"), _named(args.reference, "--reference")
    if not teachers:
        raise SystemExit("give at least one --teacher")
    doc = json.loads(Path(args.partition).read_text())
    dataset = build_dataset(doc.get("dataset", "camvid"), args.data_root or doc["root"],
                            doc.get("split", "train"), **doc.get("options", {}))
    index = {dataset.name(i): i for i in range(len(dataset))}
    frames = [index[n] for n in doc["unlabeled"]][::args.every]
    models, meta = {}, None
    for name, path in {**teachers, **references}.items():
        model, meta = load_checkpoint(path)
        models[name] = Teacher(model, meta, path)
    classes = meta.class_names
    thresholds = [float(t) for t in args.thresholds.split(",")]
    quality = {n: PseudoLabelQuality(len(classes), thresholds) for n in [*models, "average"]}
    pair = list(teachers)[:2]
    agreement = TeacherAgreement() if len(pair) == 2 else None
    for i in frames:
        image, labels = dataset.load(i)
        x, _ = to_tensors(image, labels, meta.mean, meta.std)
        probs = {n: _probabilities(t, x) for n, t in models.items()}
        for n, p in probs.items():
            quality[n].update(p, labels)
        quality["average"].update(np.mean([probs[n] for n in teachers], axis=0), labels)
        if agreement is not None:
            agreement.update(probs[pair[0]], probs[pair[1]], labels)
    result = {"partition": args.partition, "frames": len(frames),
              "teachers": {n: str(p) for n, p in teachers.items()},
              "references": {n: str(p) for n, p in references.items()},
              "quality": {n: q.summary(classes) for n, q in quality.items()},
              "agreement": {"pair": pair, **agreement.summary()} if agreement else None}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    for name, q in result["quality"].items():
        for t, s in q.items():
            worst = sorted(s["classes"].items(), key=lambda kv: np.nan_to_num(kv[1]["recall"]))
            print(f"{name:>14} conf>={t:<4} coverage {s['coverage']:.3f} acc {s['accuracy']:.3f}"
                  f" mIoU(kept) {s['miou_kept']:.3f}; lowest recall: " + ", ".join(
                      f"{c} {v['recall']:.2f}" for c, v in worst[:3]))
    if agreement is not None:
        print("agreement", {k: round(v, 3) for k, v in agreement.summary().items()})


if __name__ == "__main__":
    main()
