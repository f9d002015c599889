"""Score an engine on labelled frames, per width: the one scoring path every command shares.

``slimseg eval`` and the per-width validation during training call :func:`score_engine`; the
rosbag evaluations feed the same :class:`~slimseg_ros.eval.width_scores.WidthScores`, so their
numbers agree by construction.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from .width_scores import WidthScores

__all__ = ["score_engine", "Segmenter"]


class Segmenter(Protocol):
    def infer(self, image: np.ndarray, width: float) -> np.ndarray: ...


def score_engine(
    engine: Segmenter,
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    widths: Sequence[float],
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    boundary_tolerance: float = 2,
    on_sample: Callable[[], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Run every width on every (RGB uint8, uint8 labels) sample; per-width metrics and count.

    Returns ``({"0.25": {"miou", "pixel_acc", "boundary_f1", "interior_miou", "per_class_iou",
    "frames", "latency_ms_p50", "latency_ms_p95"}, ...}, images)``.
    """
    scores = WidthScores(class_names, ignore_index, boundary_tolerance)
    count = 0
    for image, label in samples:
        for width in widths:
            t0 = time.perf_counter()
            pred = engine.infer(image, width)
            scores.add(width, pred, label, time.perf_counter() - t0)
        count += 1
        if on_sample is not None:
            on_sample()
    return scores.per_width(), count
