"""The runtime interface: an RGB uint8 image and a width in, a uint8 label image out.

A :class:`SegmentationEngine` owns one compiled runner per width, all built and warmed up when it
is created, so switching width between frames is a dictionary lookup. Backends differ only in how
a runner is built from the frozen width (see :mod:`slimseg_ros.runtime.backends`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import cv2
import numpy as np

from ..model.checkpoint import CheckpointMeta
from ..widths import match_width

__all__ = ["Runner", "SegmentationEngine", "validate_rgb"]

# A runner maps a (1, H, W, 3) uint8 RGB array at the engine's input size to (H, W) uint8 labels.
Runner = Callable[[np.ndarray], np.ndarray]


def validate_rgb(image: object) -> np.ndarray:
    """Check that ``image`` is an HxWx3 uint8 array; ``ValueError`` saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an HxWx3 uint8 numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {tuple(image.shape)}")
    return image


@dataclass
class SegmentationEngine:
    """All widths of one model on one backend, ready to run.

    Attributes:
        runners: width -> runner at ``input_size``.
        meta: the checkpoint metadata (classes, palette, widths, training summary).
        backend, device, precision: what actually runs (reported in diagnostics).
        input_size: (H, W) the runners were built for; other image sizes are resized to it and
            the labels resized back (nearest), so outputs always match the input resolution.
        latency_s: width -> median seconds of one end-to-end inference, measured at warm-up;
            seeds the width controller.
        notes: how the backend was chosen, cache hits, etc. (logged by callers).
        model_path: the checkpoint file, or None for a randomly initialised stand-in.
    """

    runners: Mapping[float, Runner]
    meta: CheckpointMeta
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int]
    latency_s: dict[float, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model_path: str | None = None

    @property
    def widths(self) -> tuple[float, ...]:
        return tuple(sorted(self.runners))

    def runner(self, width: float) -> Runner:
        return self.runners[match_width(width, self.widths)]

    def infer(self, image: np.ndarray, width: float) -> np.ndarray:
        """Segment one RGB uint8 image at ``width``; labels (H, W) uint8 at the image's size."""
        run = self.runner(width)
        image = validate_rgb(image)
        h, w = image.shape[:2]
        net_h, net_w = self.input_size
        resized = (h, w) != (net_h, net_w)
        if resized:
            image = cv2.resize(image, (net_w, net_h), interpolation=cv2.INTER_LINEAR)
        labels = run(np.ascontiguousarray(image)[None])
        if resized:
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return labels

    def warm_up(self, repeats: int = 5, warmup: int = 2) -> dict[float, float]:
        """Run every width on a synthetic frame; store and return median latency per width."""
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (*self.input_size, 3), dtype=np.uint8)
        for width in self.widths:
            for _ in range(warmup):
                self.infer(frame, width)
            samples = []
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                self.infer(frame, width)
                samples.append(time.perf_counter() - t0)
            self.latency_s[width] = float(np.median(samples))
        return dict(self.latency_s)
