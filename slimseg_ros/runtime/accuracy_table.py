"""The accuracy table: val mIoU per operating point, stored beside the checkpoint.

``slimseg eval --input-sizes ... --save-accuracy`` writes ``<checkpoint>.points.json`` next to
``<checkpoint>.safetensors``; the node reads it to rank its points (the Pareto front needs an
accuracy per point). Beside the checkpoint rather than in its metadata so that scoring a model
never rewrites the model file (whose sha256 keys every engine cache and latency table); the
table records that sha256 and is ignored, with a warning, when it belongs to another file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .points import OperatingPoint, parse_point_key, point_key

__all__ = ["ACCURACY_FORMAT", "AccuracyTableError", "accuracy_path", "load_accuracy",
           "make_accuracy_table", "point_accuracy"]

ACCURACY_FORMAT = "slimseg-accuracy-table/1"


class AccuracyTableError(ValueError):
    """Not a usable accuracy table; the message says why in one line."""


def accuracy_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``models/x.safetensors`` -> ``models/x.points.json``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".points.json")


def make_accuracy_table(model_sha256: str, points: Mapping[str, Mapping[str, Any]],
                        dataset: str, split: str, images: int) -> dict[str, Any]:
    return {"format": ACCURACY_FORMAT, "model_sha256": model_sha256, "dataset": dataset,
            "split": split, "images": images,
            "points": {k: {"miou": float(v["miou"]), "pixel_acc": float(v["pixel_acc"])}
                       for k, v in points.items()}}


def load_accuracy(path: str | os.PathLike[str], model_sha256: str | None
                  ) -> dict[OperatingPoint, float]:
    """mIoU per point from the table at ``path``.

    Raises:
        AccuracyTableError: unreadable, not a table, a bad row, or written for a checkpoint
            whose sha256 is not ``model_sha256`` (when given).
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AccuracyTableError(f"{path} is not a readable accuracy table ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != ACCURACY_FORMAT:
        raise AccuracyTableError(f"{path} is not an accuracy table (format "
                                 f"{ACCURACY_FORMAT!r} expected)")
    if model_sha256 and doc.get("model_sha256") != model_sha256:
        raise AccuracyTableError(f"{path} was written for another checkpoint (sha256 "
                                 f"{str(doc.get('model_sha256'))[:12]}..., this one "
                                 f"{model_sha256[:12]}...); run slimseg eval --input-sizes "
                                 "--save-accuracy again")
    out: dict[OperatingPoint, float] = {}
    for name, row in (doc.get("points") or {}).items():
        try:
            point = parse_point_key(name)
        except ValueError as exc:
            raise AccuracyTableError(f"{path}: {exc}") from None
        miou = row.get("miou") if isinstance(row, dict) else None
        if not isinstance(miou, (int, float)) or not 0.0 <= miou <= 1.0:
            raise AccuracyTableError(f"{path}: point {name} needs a miou in [0, 1]")
        out[point] = float(miou)
    return out


def point_accuracy(table: Mapping[OperatingPoint, float], points: Iterable[OperatingPoint]
                   ) -> dict[OperatingPoint, float]:
    """The table's mIoU for each of ``points``; AccuracyTableError naming the first missing."""
    out = {}
    for p in points:
        key = OperatingPoint(p.width, tuple(p.size))
        hit = next((v for k, v in table.items() if k.size == key.size
                    and abs(k.width - key.width) < 1e-6), None)
        if hit is None:
            raise AccuracyTableError(f"the accuracy table has no point "
                                     f"{point_key(p.width, p.size)}")
        out[key] = hit
    return out
