"""Offline evaluation: every width on every labelled frame, no ROS and no timing pressure.

``slimseg bag eval --mode offline`` runs this on the frames of a bag; run on the frames of a
dataset it is the plain per-frame evaluation, and both give the same numbers for the same frames
(same engine, and the metric classes that ``slimseg eval``'s
:func:`~slimseg_ros.eval.scoring.score_engine` uses, via
:class:`~slimseg_ros.eval.width_scores.WidthScores`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..data.bagread import inspect_bag, iter_labelled_frames, resolve_topics
from ..widths import parse_widths
from .width_scores import WidthScores

__all__ = ["OfflineResult", "evaluate_bag_offline", "evaluate_frames"]


@dataclass
class OfflineResult:
    """The JSON document (``doc``) and the scores behind it (confusion matrices for plots)."""

    doc: dict[str, Any]
    scores: WidthScores


def evaluate_frames(
    engine: Any,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    widths: Sequence[float] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    boundary_tolerance: float = 2,
    total: int | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> WidthScores:
    """Run every width on every (RGB, labels) frame and score it.

    Args:
        engine: a :class:`~slimseg_ros.runtime.SegmentationEngine` (or anything with
            ``infer(rgb, width)``, ``widths`` and ``meta``).
        frames: HxWx3 uint8 RGB with HxW uint8 ground truth.
        widths: widths to run (default: all of the engine's).
        class_names, ignore_index: default to the checkpoint's.
        total: number of frames, for the progress bar.
    """
    chosen = parse_widths(widths, engine.widths)
    meta = getattr(engine, "meta", None)
    names = class_names or getattr(meta, "class_names", None)
    if not names:
        raise ValueError("class names are needed to score predictions")
    ignore = ignore_index if ignore_index is not None else getattr(meta, "ignore_index", 255)
    scores = WidthScores(names, ignore, boundary_tolerance)
    if progress:
        from ..progress import progress_bar

        frames = progress_bar(frames, total=total, desc=desc, unit="frame")
    for rgb, labels in frames:
        for width in chosen:
            t0 = time.perf_counter()
            pred = engine.infer(rgb, width)
            scores.add(width, pred, labels, time.perf_counter() - t0)
    return scores


def evaluate_bag_offline(
    bag: str | Path,
    engine: Any,
    *,
    widths: Sequence[float] | None = None,
    image_topic: str | None = None,
    label_topic: str | None = None,
    model: str | None = None,
    progress: bool = False,
) -> OfflineResult:
    """Evaluate every width on every labelled frame of a bag (frames paired by stamp).

    Returns:
        :class:`OfflineResult` whose ``doc`` has the ``slimseg eval`` layout (``widths`` ->
        ``miou``, ``pixel_acc``, ``boundary_f1``, ``per_class_iou``) plus ``frames``, latency
        per width, and the replay fields (``frames_sent`` = ``frames_processed`` = images).
    """
    info = inspect_bag(bag)
    topics = resolve_topics(info, image_topic, label_topic)
    if topics.labels is None:
        raise ValueError(f"{info.path} has no label topic to score against (looked for "
                         f"/camera/labels; name it with --label-topic); it has: "
                         f"{info.describe()}")
    frames = ((f.rgb, f.labels) for f in iter_labelled_frames(info.path, topics))
    scores = evaluate_frames(engine, frames, widths, total=info.count(topics.labels),
                             progress=progress, desc="offline eval")
    n = scores.summary(scores.widths[0])["frames"] if scores.widths else 0
    if n == 0:
        raise ValueError(f"no frame of {topics.image} has labels with the same stamp on "
                         f"{topics.labels}")
    doc = {
        "mode": "offline",
        "bag": str(info.path),
        "topics": {"image": topics.image, "labels": topics.labels},
        "model": model,
        "backend": getattr(engine, "backend", None),
        "device": getattr(engine, "device", None),
        "input_size": list(getattr(engine, "input_size", ()) or ()),
        "images": n,
        "frames_sent": n,
        "frames_processed": n,
        "processed_fraction": 1.0,
        "widths": scores.per_width(),
    }
    return OfflineResult(doc, scores)
