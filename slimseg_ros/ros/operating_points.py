"""The node's operating-point controller, seeded from the engine and the tables (no rclpy).

- Latency seeds: the device latency table named by ``latency_table`` when its key (device,
  backend, precision, threads, library versions, model sha256) matches this node and it holds
  every point; otherwise, with a warning naming the mismatch, the engine's start-up profile.
- Accuracy per point: the accuracy table beside the checkpoint (``<model>.points.json``,
  written by ``slimseg eval --input-sizes ... --save-accuracy``) when it was written for this
  checkpoint and holds every point; otherwise GFLOPs stand in (a wider or larger point does
  more work and is taken as more accurate), which with one size is the width order of before.
- Cost per point (battery caps): GFLOPs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..control import ControllerConfig, ControlPoint, PointController
from ..runtime.accuracy_table import (
    AccuracyTableError, accuracy_path, load_accuracy, point_accuracy)
from ..runtime.cache import file_sha256
from ..runtime.latency_table import (
    LatencyTableError, device_key, read_table, table_latency_s, table_mismatch)
from ..runtime.points import PointEngine, point_key
from ..sizes import format_size, format_sizes
from ..widths import format_widths
from .params import check_resolution

__all__ = ["PointSetup", "make_point_controller", "operating_point_json", "pin_at_start",
           "ready_text"]


@dataclasses.dataclass
class PointSetup:
    controller: PointController
    latency_source: str
    accuracy_source: str
    warnings: list[str]
    """For the node's log (one line each)."""


def make_point_controller(engine: PointEngine, config: ControllerConfig,
                          latency_table: str | None, model_path: str | Path | None
                          ) -> PointSetup:
    """The controller for ``engine``'s points; raises ValueError only for a config that no
    point satisfies (tables that do not fit are warned about and skipped)."""
    warnings: list[str] = []
    sha = file_sha256(model_path) if model_path else None
    latency = dict(engine.point_latency_s)
    latency_source = "start-up profile"
    if latency_table:
        try:
            table = read_table(latency_table)
            mismatch = table_mismatch(table["key"], device_key(engine, sha))
            if mismatch:
                raise LatencyTableError(f"it was measured elsewhere ({mismatch})")
            latency = table_latency_s(table, engine.points)
            latency_source = f"latency table {latency_table}"
        except LatencyTableError as exc:
            warnings.append(f"latency_table {latency_table} refused: {exc}; using the start-up "
                            "profile")
    gflops = engine.point_gflops()
    accuracy = dict(gflops)
    accuracy_source = "GFLOPs (no accuracy table)"
    if model_path:
        path = accuracy_path(model_path)
        if path.is_file():
            try:
                accuracy = point_accuracy(load_accuracy(path, sha), engine.points)
                accuracy_source = f"accuracy table {path}"
            except AccuracyTableError as exc:
                warnings.append(f"accuracy table ignored: {exc}; ranking points by GFLOPs")
        elif len(engine.sizes) > 1:
            warnings.append(f"no accuracy table {path} (slimseg eval --input-sizes ... "
                            "--save-accuracy writes it): ranking points by GFLOPs")
    points = [ControlPoint(p.width, p.size, accuracy[p], gflops[p]) for p in engine.points]
    seeds = {(p.width, p.size): latency[p] for p in engine.points}
    return PointSetup(PointController(points, seeds, config), latency_source, accuracy_source,
                      warnings)


def pin_at_start(controller: PointController, engine: PointEngine, values: dict[str, Any],
                 pinned_before_ready: set[str]) -> None:
    """The pins a node that is not ``adaptive`` starts with: ``width`` (unless an operator
    pinned only the resolution before the engines existed) and ``resolution`` unless [0, 0].

    Raises:
        ValueError: the resolution is not one of the engine's sizes, or the width cannot be
            pinned.
    """
    if values["adaptive"]:
        return
    size = check_resolution(values["resolution"], list(engine.sizes))
    if pinned_before_ready != {"resolution"}:
        controller.pin(values["width"])
    if size is not None:
        controller.pin_size(size)


def ready_text(engine: PointEngine, controller: PointController) -> str:
    """The node's ``ready:`` line: backend, device, widths, sizes and the point it starts at."""
    return (f"ready: {engine.backend} on {engine.device} ({engine.precision}), widths "
            f"{format_widths(engine.widths)}, network input "
            f"{format_sizes(engine.sizes)}, width {controller.width:g} "
            + (f"at {format_size(controller.size)} " if len(engine.sizes) > 1 else "")
            + f"({'adaptive' if controller.adaptive else 'pinned'})")


def operating_point_json(width: float, size: tuple[int, int], adaptive: bool,
                         pinned: list[str], reason: str) -> str:
    """What ``~/operating_point`` carries (std_msgs/String): the point and why, as JSON."""
    return json.dumps({"point": point_key(width, size), "width": float(width),
                       "input_size": [int(size[0]), int(size[1])], "adaptive": adaptive,
                       "pinned": pinned, "reason": reason})


def pinned_words(status: Any) -> list[str]:
    """Which dimensions an operator holds: ``["width"]``, ``["resolution"]``, both or none."""
    out = []
    if status.pinned_width is not None:
        out.append("width")
    if status.pinned_size is not None:
        out.append("resolution")
    return out


def front_text(front: Any) -> str:
    return ", ".join(f"{w:g}@{format_size(s)}" for w, s in front)
