"""Operating points as the controller sees them, and their accuracy/latency Pareto front.

Pure Python. A point is a width and a network input size with three numbers: its accuracy
(val mIoU from an accuracy table, or a stand-in; higher is better), its cost (GFLOPs per frame:
what a battery cap limits) and a seed latency (from a device latency table or the start-up
profile). A point is *dominated* when another is at least as accurate and strictly faster;
dominated points are never chosen.

Why "strictly faster": the start-up profile is made monotone in width by pooling neighbours
(``runtime.engine.monotone_profile``), so equal latencies are a pooling artefact of noise, not
evidence that the wider width costs nothing more. Treating a tie as domination would drop the
narrow width on the strength of noise.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, NamedTuple, Sequence

from slimseg_ros.sizes import Size, format_size

__all__ = ["ControlPoint", "pareto_front", "point_name"]


class ControlPoint(NamedTuple):
    """One operating point with what the controller needs to rank it."""

    width: float
    size: Size
    accuracy: float
    """Higher is better (val mIoU, or a stand-in that orders points the same way)."""
    cost: float
    """GFLOPs per frame (what battery caps limit)."""

    @property
    def key(self) -> tuple[float, Size]:
        return (self.width, self.size)


def point_name(width: float, size: Sequence[int], one_size: bool) -> str:
    """``width 0.5`` when the model runs at one size (the words of before), else
    ``0.5@270x360``."""
    if one_size:
        return f"width {width:g}"
    return f"{width:g}@{format_size(size)}"


def check_points(points: Iterable[ControlPoint]) -> tuple[ControlPoint, ...]:
    """The points, checked: ``ValueError`` in one line for a repeated point or a bad number."""
    out: list[ControlPoint] = []
    seen: set[tuple[float, Size]] = set()
    for p in points:
        if not (math.isfinite(p.width) and p.width > 0):
            raise ValueError(f"point width must be a positive number, got {p.width!r}")
        if not (math.isfinite(p.accuracy) and math.isfinite(p.cost) and p.cost >= 0):
            raise ValueError(f"point {point_name(p.width, p.size, False)} needs a finite "
                             f"accuracy and cost >= 0, got {p.accuracy!r} and {p.cost!r}")
        if p.key in seen:
            raise ValueError(f"point {point_name(p.width, p.size, False)} is given twice")
        seen.add(p.key)
        out.append(ControlPoint(float(p.width), (int(p.size[0]), int(p.size[1])),
                                float(p.accuracy), float(p.cost)))
    if not out:
        raise ValueError("no operating points")
    return tuple(out)


def pareto_front(points: Iterable[ControlPoint],
                 latency_s: Mapping[tuple[float, Size], float]) -> list[ControlPoint]:
    """The points no other point dominates, least accurate (and fastest) first.

    ``q`` dominates ``p`` when ``q.accuracy >= p.accuracy`` and ``latency(q) < latency(p)``.
    Along the result accuracy and latency both rise, so "more accurate" and "slower" are the
    same direction there.
    """
    pts = list(points)
    front = [p for p in pts
             if not any(q.accuracy >= p.accuracy and latency_s[q.key] < latency_s[p.key]
                        for q in pts if q is not p)]
    return sorted(front, key=lambda p: (p.accuracy, latency_s[p.key], p.cost, p.width))
