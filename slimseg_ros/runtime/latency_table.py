"""The device latency table: p50/p95/p99 per operating point, measured on the device itself.

FasterSeg's point (Chen et al., ICLR 2020): decisions about latency come from a lookup table
measured on the target, not from FLOPs. ``slimseg profile`` writes one; the node's
``latency_table`` parameter loads it to seed the controller. A table is only valid where it was
measured: its *key* (device name, backend, precision, threads, library versions, model) must
equal the running node's, else :func:`table_mismatch` names the first field that differs and
the node profiles itself as before.

Timing protocol: that of ``slimseg bench`` (:func:`~slimseg_ros.runtime.timing.time_interleaved`,
turns of ``block`` runs, the first of each dropped), end to end as the node runs a frame: the
camera-sized uint8 image in, resized to the point's input size, uint8 labels back at camera size.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .deps import cuda_device_name, module_version
from ..sizes import format_size
from .points import OperatingPoint, PointEngine, parse_point_key, point_key
from .timing import cpu_name, load_average, percentile_ms, time_interleaved

__all__ = ["TABLE_FORMAT", "LatencyTableError", "device_key", "profile_points", "read_table",
           "table_latency_s", "table_mismatch", "write_table"]

TABLE_FORMAT = "slimseg-latency-table/1"
_KEY_ORDER = ("device", "backend", "precision", "threads", "versions", "model_sha256")


class LatencyTableError(ValueError):
    """The file is not a latency table this package wrote; the message says why in one line."""


def device_name(device: str) -> str:
    """``cpu: <CPU model>`` or ``cuda: <GPU name>``: what the table was measured on."""
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        return f"cuda: {cuda_device_name(index)}"
    return f"cpu: {cpu_name()}"


def device_key(engine: PointEngine, model_sha256: str | None) -> dict[str, Any]:
    """What a table's numbers depend on, for ``engine`` in this process."""
    return {
        "device": device_name(engine.device),
        "backend": engine.backend,
        "precision": engine.precision,
        "threads": int(torch.get_num_threads()),
        "versions": {name: module_version(name) for name in (
            "torch", "onnxruntime", "torch_tensorrt", "tensorrt", "slimseg_ros")},
        "model_sha256": model_sha256 or "",
    }


def table_mismatch(table_key: Mapping[str, Any], key: Mapping[str, Any]) -> str | None:
    """None when a table measured under ``table_key`` holds here (``key``), else the first
    difference in words (``threads: table 4, here 2``)."""
    for field in _KEY_ORDER:
        a, b = table_key.get(field), key.get(field)
        if field == "versions" and isinstance(a, Mapping) and isinstance(b, Mapping):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    return f"{name} version: table {a.get(name)}, here {b.get(name)}"
        elif a != b:
            return f"{field}: table {a!r}, here {b!r}"
    return None


def profile_points(engine: PointEngine, *, repeats: int = 30, block: int = 5,
                   camera_size: tuple[int, int] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """{point key: {p50_ms, p95_ms, p99_ms, samples}} for every point, timed interleaved."""
    say = progress or (lambda _m: None)
    cam = camera_size or engine.primary
    frame = np.random.default_rng(0).integers(0, 256, (*cam, 3), dtype=np.uint8)
    runners = {p.key(): (lambda image, p=p: engine.infer(image, p.width, p.size))
               for p in engine.points}
    say(f"timing {len(runners)} points x {repeats} runs (turns of {block}), camera "
        f"{format_size(cam)}...")
    samples = time_interleaved(runners, frame, repeats, block=block)
    return {k: {"p50_ms": round(percentile_ms(v, 50) or 0.0, 3),
                "p95_ms": round(percentile_ms(v, 95) or 0.0, 3),
                "p99_ms": round(percentile_ms(v, 99) or 0.0, 3),
                "samples": len(v)} for k, v in samples.items()}


def make_table(engine: PointEngine, model_sha256: str | None,
               points: Mapping[str, Mapping[str, float]], repeats: int, block: int,
               camera_size: tuple[int, int]) -> dict[str, Any]:
    return {
        "format": TABLE_FORMAT,
        "key": device_key(engine, model_sha256),
        "model": engine.model_path or "",
        "camera_size": list(camera_size),
        "repeats": repeats,
        "block": block,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": [round(v, 2) for v in load_average()],
        "points": dict(points),
    }


def write_table(path: str | os.PathLike[str], table: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")


def read_table(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The table in ``path``; :class:`LatencyTableError` in one line if it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LatencyTableError(f"{path}: no such latency table") from None
    except (OSError, ValueError) as exc:
        raise LatencyTableError(f"{path} is not a readable JSON latency table ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != TABLE_FORMAT:
        raise LatencyTableError(f"{path} is not a latency table (format {TABLE_FORMAT!r} "
                                "expected; write one with slimseg profile)")
    points = doc.get("points")
    if not isinstance(points, dict) or not isinstance(doc.get("key"), dict):
        raise LatencyTableError(f"{path}: a latency table needs 'key' and 'points'")
    for name, row in points.items():
        parse_point_key(name)
        p50 = row.get("p50_ms") if isinstance(row, dict) else None
        if not isinstance(p50, (int, float)) or not p50 > 0:
            raise LatencyTableError(f"{path}: point {name} has no positive p50_ms")
    return doc


def table_latency_s(table: Mapping[str, Any], points: Any) -> dict[OperatingPoint, float]:
    """p50 seconds per point of ``points`` (OperatingPoints); ``LatencyTableError`` naming the
    first point the table lacks."""
    out = {}
    for p in points:
        row = table["points"].get(point_key(p.width, p.size))
        if row is None:
            raise LatencyTableError(f"the latency table has no point {point_key(p.width, p.size)}"
                                    f" (it holds {', '.join(sorted(table['points']))})")
        out[OperatingPoint(p.width, tuple(p.size))] = float(row["p50_ms"]) / 1e3
    return out
