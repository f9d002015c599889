"""docs/model.md: the shipped model's quality, generated from the JSON that ``slimseg eval`` wrote.

Every number in the card comes from an eval JSON, and every JSON carries the SHA-256 of the model
file it measured; the card refuses JSONs of different models, and the test suite refuses a card
whose hash is not the shipped file's. A new model therefore cannot ship with the old numbers:

    slimseg eval --dataset camvid --data-root data/camvid --split val \\
        --input-sizes 360x480,270x360,180x240 --save-accuracy --json docs/model/camvid_val.json
    python -m slimseg_ros.eval.model_card --checkpoint models/slimseg_camvid.safetensors \\
        --out docs/model.md docs/model/camvid_val.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..runtime.cache import file_sha256

__all__ = ["card_sha256", "model_card", "main"]

COMMAND = "python -m slimseg_ros.eval.model_card"


def card_sha256(docs: Sequence[dict[str, Any]]) -> str:
    """The one model hash of ``docs``; a one-line ValueError when they measured other models."""
    hashes = {d.get("model_sha256") for d in docs}
    if not docs or None in hashes:
        raise ValueError("every eval JSON must carry model_sha256 (written by slimseg eval "
                         "since the model card exists): evaluate the model again")
    if len(hashes) > 1:
        raise ValueError(f"the eval JSONs measured {len(hashes)} different models: "
                         f"{', '.join(sorted(h[:12] for h in hashes))}")
    return hashes.pop()


def _rows(results: dict[str, dict[str, Any]]) -> list[str]:
    return [f"| {key} | {r['miou']:.3f} | {r['pixel_acc']:.3f} | {r['boundary_f1']:.3f} | "
            f"{r.get('interior_miou', float('nan')):.3f} |" for key, r in results.items()]


def _section(name: str, doc: dict[str, Any]) -> list[str]:
    where = doc["dataset"] + " " + doc["split"]
    if doc.get("sequences"):
        where += " (sequences " + ", ".join(doc["sequences"]) + ")"
    size = "x".join(str(v) for v in doc["input_size"])
    lines = [f"## {where}: {doc['images']} frames", "",
             f"`{name}`; {doc['backend']} {doc['precision']} on {doc['device']}, input {size}.",
             "", "| width | mIoU | pixel acc | boundary F1 | interior mIoU |",
             "| --- | --- | --- | --- | --- |", *_rows(doc["widths"])]
    if doc.get("points"):
        lines += ["", "Every operating point (width@HxW; the table the node ranks points by):", "",
                  "| point | mIoU | pixel acc | boundary F1 | interior mIoU |",
                  "| --- | --- | --- | --- | --- |", *_rows(doc["points"])]
    classes = list(next(iter(doc["widths"].values()))["per_class_iou"])
    lines += ["", "IoU per class:", "",
              "| width | " + " | ".join(classes) + " |",
              "| --- | " + " | ".join("---" for _ in classes) + " |"]
    for w, r in doc["widths"].items():
        lines.append(f"| {w} | " + " | ".join(f"{r['per_class_iou'][c]:.2f}" for c in classes)
                     + " |")
    return lines


def model_card(docs: Sequence[tuple[str, dict[str, Any]]], checkpoint: str) -> str:
    """The Markdown card for ``docs`` (pairs of the JSON's path and its content)."""
    sha = card_sha256([d for _, d in docs])
    names = " ".join(name for name, _ in docs)
    lines = ["# The shipped model, measured", "",
             f"Generated from the JSON that `slimseg eval` wrote; do not edit by hand: "
             f"`{COMMAND} --checkpoint {checkpoint} --out docs/model.md {names}`.", "",
             f"Model: `{checkpoint}`, SHA-256 `{sha}` (the test suite checks that this is the "
             f"shipped file).", ""]
    for name, doc in docs:
        lines += _section(name, doc) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="eval JSONs (slimseg eval --json)")
    ap.add_argument("--checkpoint", required=True, help="the model file the JSONs measured")
    ap.add_argument("--out", required=True, help="the Markdown card to write")
    args = ap.parse_args(argv)
    docs = [(p, json.loads(Path(p).read_text())) for p in args.json]
    try:
        card = model_card(docs, args.checkpoint)
        actual = file_sha256(args.checkpoint)
        if card_sha256([d for _, d in docs]) != actual:
            raise ValueError(f"the JSONs measured another model than {args.checkpoint} "
                             f"(sha256 {actual[:12]}): evaluate it again")
    except (ValueError, OSError) as exc:
        raise SystemExit(f"model card: {exc}") from None
    Path(args.out).write_text(card)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
