"""Operating points: (width, network input size) pairs, and an engine that holds one per pair.

FasterSeg's lesson (FasterSeg, Chen et al., ICLR 2020) is that input resolution is as
strong a cost knob as channel count. A :class:`PointEngine` keeps one
:class:`~slimseg_ros.runtime.engine.SegmentationEngine` per network input size (each holding a
runner per width), so switching point between frames is two dictionary lookups. It offers the
single-size engine's interface too (``widths``, ``infer(image, width)``, ``latency_s``...), at
its *primary* size (the first one given), so code written for one size keeps working.

Labels always come back at the camera's resolution, whatever the point: each size's engine
resizes the image to its input size and the labels back (nearest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..model.checkpoint import CheckpointMeta
from ..sizes import MIN_INPUT_SIDE, Size, format_size, format_sizes, parse_size
from ..widths import match_width
from .engine import SegmentationEngine

__all__ = ["OperatingPoint", "PointEngine", "point_key", "parse_point_key"]


class OperatingPoint(NamedTuple):
    """One way to run the network: a width and an (H, W) input size."""

    width: float
    size: Size

    def key(self) -> str:
        return point_key(self.width, self.size)


def point_key(width: float, size: Sequence[int]) -> str:
    """The point's name in JSON files and diagnostics: ``0.5@270x360``."""
    return f"{float(width)}@{format_size(size)}"  # widths as every JSON keys them ("1.0")


def parse_point_key(key: str) -> OperatingPoint:
    """Inverse of :func:`point_key`; ``ValueError`` naming the key otherwise."""
    width_text, sep, size_text = str(key).partition("@")
    try:
        if not sep:
            raise ValueError
        return OperatingPoint(float(width_text), parse_size(size_text, MIN_INPUT_SIDE))
    except ValueError:
        raise ValueError(f"operating point {key!r} is not WIDTH@HxW, e.g. 0.5@270x360") from None


@dataclass
class PointEngine:
    """Every (width, size) of one model on one backend, built and warmed up.

    Attributes:
        engines: size -> the engine running the model at that size (its runners per width).
        primary: the size single-size callers get (the first one configured).
    """

    engines: Mapping[Size, SegmentationEngine]
    primary: Size
    gflops: dict[OperatingPoint, float] = field(default_factory=dict)
    """GFLOPs per frame of each point (what battery caps limit); empty when unknown."""

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("a PointEngine needs at least one input size")
        self.engines = {(int(k[0]), int(k[1])): e for k, e in self.engines.items()}
        self.primary = tuple(int(v) for v in self.primary)  # type: ignore[assignment]
        if self.primary not in self.engines:
            raise ValueError(f"primary size {format_size(self.primary)} has no engine")

    @classmethod
    def single(cls, engine: SegmentationEngine) -> PointEngine:
        """One size: today's engine, seen as operating points."""
        size = (int(engine.input_size[0]), int(engine.input_size[1]))
        return cls({size: engine}, size)

    # -- the single-size interface, at the primary size -------------------------------------

    @property
    def main(self) -> SegmentationEngine:
        return self.engines[self.primary]

    @property
    def meta(self) -> CheckpointMeta:
        return self.main.meta

    @property
    def backend(self) -> str:
        return self.main.backend

    @property
    def device(self) -> str:
        return self.main.device

    @property
    def precision(self) -> str:
        return self.main.precision

    @property
    def model_path(self) -> str | None:
        return self.main.model_path

    @property
    def notes(self) -> list[str]:
        return self.main.notes

    @property
    def input_size(self) -> Size:
        return self.primary

    @property
    def widths(self) -> tuple[float, ...]:
        return self.main.widths

    @property
    def latency_s(self) -> dict[float, float]:
        return self.main.latency_s

    # -- points -----------------------------------------------------------------------------

    @property
    def sizes(self) -> tuple[Size, ...]:
        """Input sizes, largest (by pixels) first."""
        return tuple(sorted(self.engines, key=lambda s: (-s[0] * s[1], s)))

    @property
    def points(self) -> tuple[OperatingPoint, ...]:
        return tuple(OperatingPoint(w, s) for s in self.sizes for w in self.engines[s].widths)

    @property
    def point_latency_s(self) -> dict[OperatingPoint, float]:
        """Warm-up median per point (seconds); seeds the controller without a latency table."""
        return {OperatingPoint(w, s): t for s in self.sizes
                for w, t in self.engines[s].latency_s.items()}

    def point_gflops(self) -> dict[OperatingPoint, float]:
        """GFLOPs per point; without counts, width^2 x pixels (channel slimming scales a conv
        net's work about quadratically in width and linearly in pixels)."""
        if self.gflops:
            return dict(self.gflops)
        return {p: p.width ** 2 * p.size[0] * p.size[1] * 1e-6 for p in self.points}

    def engine(self, size: Sequence[int] | None = None) -> SegmentationEngine:
        """The engine of ``size`` (None: the primary); ``ValueError`` listing the sizes."""
        key = self.primary if size is None else (int(size[0]), int(size[1]))
        try:
            return self.engines[key]
        except KeyError:
            raise ValueError(f"input size {format_size(key)} is not one of this engine's "
                             f"sizes ({format_sizes(self.sizes)})"
                             ) from None

    def infer(self, image: np.ndarray, width: float, size: Sequence[int] | None = None
              ) -> np.ndarray:
        """Labels (H, W) uint8 at the image's own size, computed at ``(width, size)``."""
        return self.engine(size).infer(image, match_width(width, self.widths))

    def warm_up(self, repeats: int = 5, warmup: int = 2) -> dict[OperatingPoint, float]:
        for engine in self.engines.values():
            engine.warm_up(repeats=repeats, warmup=warmup)
        return self.point_latency_s

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
