"""Scoring a replay, without ROS: answers matched to frames by stamp, scores per width, the
switch timeline, and the ``metrics.json`` document.

What the node sent back is recorded by :mod:`slimseg_ros.ros.client.replay_client` as plain data
(:class:`ReplayRecording`); everything here works on that data alone, after the node has
stopped, so scoring takes no CPU from the run being measured.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..data.bagread import BagInfo, BagTopics
from ..data.pixels import image_to_labels
from ..runtime.timing import load_average, percentile_ms
from .replay_plan import ReplayConfig, ReplayPlan
from .metrics import ConfusionMatrix
from .width_scores import WidthScores, clean_labels

__all__ = [
    "ReceivedLabels", "ReplayRecording", "ReplayResult", "agreement_timeline",
    "checkpoint_class_names", "conditions",
    "replay_document", "score_recording", "switch_timeline",
]


@dataclass
class ReceivedLabels:
    """One label image from the node (pixels zlib-compressed to bound memory)."""

    stamp_ns: int
    t: float
    """Arrival, seconds on the replay clock."""
    width: float | None
    """The last ``~/width`` value received before it (None if none yet)."""
    height_px: int
    width_px: int
    encoding: str
    step: int
    data_z: bytes
    point: str | None = None
    """The last ``~/operating_point`` received before it (``0.5@270x360``; None if none)."""

    def pixels(self) -> np.ndarray:
        """The HxW class ids."""
        return image_to_labels(self.encoding, self.height_px, self.width_px, self.step,
                               zlib.decompress(self.data_z))


@dataclass
class ReplayRecording:
    """What happened, on one clock (seconds since the first scheduled event)."""

    sent: list[tuple[int, float]] = field(default_factory=list)
    """(image header stamp ns, time published) per image."""
    event_times: list[float] = field(default_factory=list)
    """Time each event was carried out, in event order."""
    labels: list[ReceivedLabels] = field(default_factory=list)
    widths: list[tuple[float, float]] = field(default_factory=list)
    """(time, width) of every ``~/width`` message, the latched one first."""
    diagnostics: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    """(time, key -> value) of the node's status messages."""
    params: list[dict[str, Any]] = field(default_factory=list)
    """Parameter changes: time requested, name, value, successful, reason, time answered."""
    notes: list[str] = field(default_factory=list)


@dataclass
class ReplayResult:
    """The JSON document and what the report plots are drawn from."""

    doc: dict[str, Any]
    scores: WidthScores


def score_recording(
    recording: Any,
    original_stamp: dict[int, int],
    ground_truth: Callable[[set[int]], Iterator[tuple[int, np.ndarray]]] | None,
    class_names: Sequence[str],
    ignore_index: int = 255,
) -> tuple[dict[str, Any], WidthScores]:
    """Match answers to frames by stamp and score them against the ground truth.

    Args:
        recording: a :class:`ReplayRecording` (or any object with ``sent`` and ``labels``
            shaped like it).
        original_stamp: sent stamp -> the stamp of that frame's ground truth.
        ground_truth: ``f(stamps)`` yielding (stamp, HxW labels) for the wanted original stamps,
            in any order (None: no ground truth, timing only).
        class_names: one name per class id.

    Returns:
        (counts, timing and per-frame records; scores per width and overall).
    """
    sent = {stamp: t for stamp, t in recording.sent}
    answers: dict[int, Any] = {}
    duplicates = unexpected = 0
    for label in recording.labels:
        if label.stamp_ns not in sent:
            unexpected += 1
        elif label.stamp_ns in answers:
            duplicates += 1
        else:
            answers[label.stamp_ns] = label
    scores = WidthScores(class_names, ignore_index)
    point_confusion: dict[str, ConfusionMatrix] = {}
    by_original: dict[int, list[int]] = {}
    for stamp in answers:
        by_original.setdefault(original_stamp.get(stamp, stamp), []).append(stamp)
    size_mismatch = 0
    scored = 0
    if ground_truth is not None and by_original:
        for orig, gt in ground_truth(set(by_original)):
            for stamp in by_original.get(orig, ()):
                label = answers[stamp]
                pred = label.pixels()
                if pred.shape != gt.shape:
                    size_mismatch += 1
                    continue
                scores.add(label.width, pred, gt, label.t - sent[stamp])
                if label.point is not None:
                    point_confusion.setdefault(label.point, ConfusionMatrix(
                        len(class_names), ignore_index)).update(
                            pred, clean_labels(gt, len(class_names), ignore_index))
                scored += 1
    frames = []
    for stamp, t_sent in sorted(sent.items(), key=lambda kv: kv[1]):
        label = answers.get(stamp)
        frames.append({
            "stamp_ns": stamp, "t_sent": round(t_sent, 6),
            "t_received": None if label is None else round(label.t, 6),
            "latency_ms": None if label is None else round((label.t - t_sent) * 1e3, 3),
            "width": None if label is None else label.width,
            "point": None if label is None else label.point,
        })
    latencies = [answers[s].t - sent[s] for s in answers]
    n_sent, n_done = len(sent), len(answers)
    counts = {
        "frames_sent": n_sent,
        "frames_processed": n_done,
        "processed_fraction": (n_done / n_sent) if n_sent else None,
        "frames_dropped": n_sent - n_done,
        "frames_scored": scored,
        "unexpected_outputs": unexpected,
        "duplicate_outputs": duplicates,
        "size_mismatches": size_mismatch,
        "latency_ms": {
            "p50": percentile_ms(latencies, 50), "p95": percentile_ms(latencies, 95),
            "max": percentile_ms(latencies, 100),
            "mean": float(np.mean(latencies) * 1e3) if latencies else None,
        },
        "points": _point_counts(answers.values(), point_confusion),
        "frames": frames,
    }
    return counts, scores


def _point_counts(answers: Any, confusion: dict[str, ConfusionMatrix]) -> dict[str, Any]:
    """Frames answered and mIoU (of the scored ones) per operating point."""
    out: dict[str, Any] = {}
    for label in answers:
        if label.point is not None:
            out.setdefault(label.point, {"frames": 0, "miou": None})["frames"] += 1
    for point, matrix in confusion.items():
        miou = matrix.miou()
        out.setdefault(point, {"frames": 0})["miou"] = None if math.isnan(miou) else float(miou)
    return dict(sorted(out.items()))


def switch_timeline(recording: ReplayRecording) -> list[dict[str, Any]]:
    """Width changes (from ``~/width``) with the reason the node gave: the
    ``last_switch_reason`` of its first status that shows the new width."""
    out: list[dict[str, Any]] = []
    for t, width in recording.widths:
        if out and out[-1]["width"] == width:
            continue
        reason = next((status.get("last_switch_reason", "")
                       for td, status in recording.diagnostics
                       if td >= t - 0.05 and status.get("width")
                       and math.isclose(float(status["width"]), width, abs_tol=1e-6)), "")
        out.append({"t": round(t, 3), "width": width, "reason": reason})
    return out


def agreement_timeline(recording: ReplayRecording) -> list[list[Any]]:
    """[t, agreement, operating point] of each status whose label-free agreement changed (the
    node checks every ``agreement_period_s`` in idle time; statuses come at 1 Hz)."""
    out: list[list[Any]] = []
    for t, status in recording.diagnostics:
        value = status.get("agreement")
        if value in (None, "", "nan"):
            continue
        row = [round(t, 3), float(value), status.get("operating_point")]
        if not out or out[-1][1:] != row[1:]:
            out.append(row)
    return out


def conditions() -> dict[str, Any]:
    """The machine's load and Python, recorded at the start and the end of a replay."""
    return {"cpu_count": os.cpu_count(), "loadavg_1min": round(load_average()[0], 2),
            "python": sys.version.split()[0]}


def replay_document(info: BagInfo, topics: BagTopics, config: ReplayConfig, plan: ReplayPlan,
                    recording: ReplayRecording, counts: dict[str, Any], scores: WidthScores, *,
                    node: dict[str, Any], conditions: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics.json`` document of a replay (``node``: how the node ran, from
    :mod:`slimseg_ros.ros.client.replay`)."""
    duration = max([t for _, t in recording.sent] + [0.0]) or plan.duration_s
    return {
        "mode": "replay",
        "bag": str(info.path),
        "topics": {"image": topics.image, "labels": topics.labels, "battery": topics.battery},
        "model": config.model_path,
        "node": node,
        "speed": config.speed,
        "loops": config.loops,
        "duration_s": round(duration, 3),
        **{k: v for k, v in counts.items() if k != "frames"},
        "fps": {"input": (counts["frames_sent"] - 1) / duration if duration > 0 else None,
                "output": counts["frames_processed"] / duration if duration > 0 else None},
        "overall": scores.summary() if scores.overall.frames else None,
        "widths": scores.per_width(),
        "points": counts.get("points", {}),
        "width_timeline": switch_timeline(recording),
        "battery_timeline": [[round(t, 3), round(b, 4)] for t, b in plan.battery_series],
        "agreement_timeline": agreement_timeline(recording),
        "param_changes": recording.params,
        "node_diagnostics": recording.diagnostics[-1][1] if recording.diagnostics else None,
        "notes": recording.notes,
        "conditions": conditions,
        "frames": counts["frames"],
    }


def checkpoint_class_names(model_path: str | None, required: bool) -> list[str]:
    """Class names from the checkpoint (empty: ask the running node later)."""
    from ..model.checkpoint import read_metadata
    from ..runtime.loader import default_model_path

    path = model_path or default_model_path()
    if path is None:
        if required:
            raise ValueError("no checkpoint given and the default model is not installed; "
                             "pass --checkpoint")
        return []
    return list(read_metadata(path).class_names)
