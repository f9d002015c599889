"""The runtime interface: an RGB uint8 image and a width in, a uint8 label image out.

A :class:`SegmentationEngine` owns one compiled runner per width, all built and warmed up when it
is created, so switching width between frames is a dictionary lookup. Backends differ only in how
a runner is built from the frozen width (see :mod:`slimseg_ros.runtime.backends`).
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass, field
from typing import Callable, Mapping

import cv2
import numpy as np

from ..model.checkpoint import CheckpointMeta
from ..widths import match_width
from .timing import time_interleaved

__all__ = ["Runner", "SegmentationEngine", "monotone_profile", "validate_rgb"]

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
        """Run every width on a synthetic frame; store and return median latency per width.

        The widths are timed in turns (interleaved, order rotated every round), so a busy
        moment of the machine is shared by all widths instead of slowing one; and the profile
        is made monotone (:func:`monotone_profile`): a wider width is never recorded as faster
        than a narrower one, which only noise can make it.
        """
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (*self.input_size, 3), dtype=np.uint8)
        samples = time_interleaved(
            {w: functools.partial(self.infer, width=w) for w in self.widths}, frame,
            repeats=max(1, repeats), warmup=warmup)
        medians = {w: float(np.median(s)) for w, s in samples.items()}
        self.latency_s.update(monotone_profile(medians))
        return dict(self.latency_s)

    def close(self) -> None:
        """Drop every width's runner (and the GPU memory they hold, where there is a GPU)."""
        self.runners = {}
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def monotone_profile(latency_s: Mapping[float, float]) -> dict[float, float]:
    """Latencies made non-decreasing in width (pool-adjacent-violators: a run of widths that
    measured faster than a narrower one gets their mean), so no width looks dominated by a
    wider one because of timing noise."""
    widths = sorted(latency_s)
    blocks: list[list[float]] = []  # [sum, count] of pooled neighbours
    for w in widths:
        blocks.append([latency_s[w], 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out += [total / count] * int(count)
    return dict(zip(widths, out))
