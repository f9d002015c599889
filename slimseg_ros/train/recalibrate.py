"""Recalibrate a checkpoint's BN statistics on frames from the robot's own camera.

The frames are cut as in training (random scale and crop of the training crop size, without
colour jitter) and normalised as the checkpoint says; weights are untouched, only each width's
running mean and variance change (see :mod:`.bn`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..data.transforms import EvalTransform, TrainTransform
from ..model.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ..model.slimseg import SlimSegNet
from ..sizes import format_size
from .bn import recalibrate_bn

__all__ = ["FrameBatches", "RecalibrationResult", "recalibrate_checkpoint", "recalibrate_model",
           "spread_indices"]

# For checkpoints whose metadata predates recording it (the shipped one): the recipe's value in
# config/train_camvid.yaml
TRAINING_SCALE_RANGE = (0.5, 1.5)


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them if fewer).

    Consecutive video frames are near-duplicates; frames spread over the whole recording say
    more about the camera than the first few seconds of it.
    """
    if total <= 0 or count <= 0:
        return []
    if count >= total:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


class FrameBatches:
    """Re-iterable (N, 3, H, W) normalised batches of ``dataset`` images at ``indices``.

    With ``crop_size``, each image is scaled by a random factor in ``scale_range``, cropped
    (padded with zeros where too small) and maybe flipped, as in training but without colour
    jitter: BN statistics estimated on what the network saw in training fit its weights better
    than statistics of whole frames (measured in docs/log/adapt.md). Without it, each image is
    resized to ``input_size`` as the engines resize. Every pass yields the same batches.
    """

    def __init__(self, dataset: Any, indices: Sequence[int], input_size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], batch_size: int = 8, *,
                 crop_size: tuple[int, int] | None = None,
                 scale_range: tuple[float, float] = (0.5, 1.5), seed: int = 0) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BN statistics), got {batch_size}")
        self.dataset, self.indices, self.batch_size = dataset, list(indices), batch_size
        self.input_size, self.mean, self.std = input_size, tuple(mean), tuple(std)
        self.crop_size, self.scale_range, self.seed = crop_size, scale_range, seed

    @property
    def frames_used(self) -> int:
        """Frames one pass yields (a last batch of one is left out)."""
        return len(self.indices) - (1 if len(self.indices) % self.batch_size == 1 else 0)

    def _transform(self) -> Callable[[np.ndarray, np.ndarray], Any]:
        """A fresh transform per pass, so every pass (every width) sees the same batches."""
        if self.crop_size is None:
            return EvalTransform(self.mean, self.std, size=self.input_size)
        return TrainTransform(self.crop_size, self.scale_range, self.mean, self.std,
                              brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                              seed=self.seed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        transform = self._transform()
        for start in range(0, len(self.indices), self.batch_size):
            chunk = self.indices[start:start + self.batch_size]
            if len(chunk) < 2:  # a batch of one has no variance to estimate
                break
            yield torch.stack([transform(*self.dataset.load(i))[0] for i in chunk])


@dataclass(frozen=True)
class RecalibrationResult:
    out: Path
    frames: int
    widths: tuple[float, ...]
    seconds: float


def recalibrate_checkpoint(
    checkpoint: str | os.PathLike[str],
    dataset: Any,
    out: str | os.PathLike[str],
    *,
    frames: int = 200,
    batch_size: int = 8,
    widths: Sequence[float] | None = None,
    full_frames: bool = False,
    source: str = "",
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> RecalibrationResult:
    """Load ``checkpoint``, re-estimate BN statistics on ``dataset`` images, save to ``out``.

    Args:
        dataset: anything with ``__len__`` and ``load(i) -> (rgb, labels)`` (labels unused).
        frames: how many frames, spread evenly over the dataset.
        widths: widths to recalibrate (default all).
        full_frames: resize whole frames to the input size instead of taking training-like
            random crops (the checkpoint's training crop size and scale range).
        source: where the frames came from, recorded in the checkpoint's metadata.
    """
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise ValueError("--out must differ from --checkpoint: keep the original model")
    if threads:
        torch.set_num_threads(threads)
    model, meta = load_checkpoint(checkpoint)
    t0 = time.perf_counter()
    meta, used, chosen = recalibrate_model(
        model, meta, dataset, frames=frames, batch_size=batch_size, widths=widths,
        full_frames=full_frames, source=source, from_checkpoint=str(checkpoint),
        progress=progress)
    seconds = time.perf_counter() - t0
    path = save_checkpoint(out, model, meta)
    return RecalibrationResult(path, used, chosen, seconds)


def recalibrate_model(
    model: SlimSegNet,
    meta: CheckpointMeta,
    dataset: Any,
    *,
    frames: int = 200,
    batch_size: int = 8,
    widths: Sequence[float] | None = None,
    full_frames: bool = False,
    source: str = "",
    from_checkpoint: str = "",
    progress: Callable[[str], None] | None = None,
) -> tuple[CheckpointMeta, int, tuple[float, ...]]:
    """Re-estimate ``model``'s BN statistics in place; (metadata recording it, frames, widths)."""
    say = progress or (lambda _m: None)
    chosen = tuple(float(w) for w in (widths or model.widths))
    indices = spread_indices(len(dataset), frames)
    if len(indices) < 2:
        raise ValueError(f"need at least 2 frames to estimate BN statistics, the source has "
                         f"{len(dataset)}")
    crop = None if full_frames else tuple(meta.training.get("crop_size", meta.input_size))
    scale = tuple(meta.training.get("scale_range", TRAINING_SCALE_RANGE))
    batches = FrameBatches(dataset, indices, meta.input_size, meta.mean, meta.std, batch_size,
                           crop_size=crop, scale_range=scale)  # type: ignore[arg-type]
    for width in chosen:
        say(f"width {width:g}: {len(indices)} frames in batches of {batch_size}...")
        recalibrate_bn(model, batches, (width,), max_batches=len(indices))
    used = batches.frames_used
    training = dict(meta.training)
    training["bn_recalibrated"] = {
        "source": source, "frames": used, "widths": [float(w) for w in chosen],
        "from_checkpoint": from_checkpoint,
        "frames_as": "whole frames" if crop is None else
        f"random crops {format_size(crop)} at scale {scale[0]:g}-{scale[1]:g}"}
    return meta.replace(training=training), used, chosen
