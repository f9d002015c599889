"""The scoring sets of the studies, and bags of CamVid through a simulated camera.

Studies (experiments/) score a checkpoint per width through the deployment path (torch on the
CPU, :func:`~slimseg_ros.eval.scoring.score_engine`) on up to four CamVid sets
(:func:`study_sets`):

  val        CamVid val (drive 0016E5)
  heldout    CamVid train's drive 0006R0 (meaningful for checkpoints that never trained on it)
  shift_a    every second val frame through camera A (:mod:`slimseg_ros.data.camera_shifts`)
  shift_b    every second val frame through camera B

:func:`shifted_bag` writes a CamVid split through a camera as a rosbag2 bag: what
``slimseg recalibrate`` and ``slimseg adapt`` read as a robot's recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from ..data import build_dataset
from ..data.camera_shifts import CameraShift, shift_a, shift_b
from ..runtime import load_engine
from . import bagio
from .scoring import score_engine

__all__ = ["HELD_OUT", "SET_NAMES", "FrameSource", "score_checkpoint", "shifted_bag",
           "study_sets"]

HELD_OUT = "0006R0"
"""The CamVid train drive the studies hold out of training (101 frames)."""
SET_NAMES = ("val", "heldout", "shift_a", "shift_b")

FrameSource = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
"""A set: called, it yields (uint8 RGB, uint8 labels) frames afresh."""


def study_sets(root: str | Path) -> dict[str, FrameSource]:
    """The four sets of a CamVid root, by name (:data:`SET_NAMES`); frames load lazily."""
    val = build_dataset("camvid", str(root), "val")
    held = build_dataset("camvid", str(root), "train", sequences=[HELD_OUT])

    def frames(dataset, camera: Callable[[np.ndarray], np.ndarray] | None = None,
               every: int = 1) -> FrameSource:
        def load() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for i in range(0, len(dataset), every):
                rgb, labels = dataset.load(i)
                yield (camera(rgb) if camera else rgb), labels
        return load

    # the shifted sets use every second val frame (consecutive frames are near-duplicates);
    # camera B's noise is the same draw (seed 0) on each frame, so a set is the same every time
    return {"val": frames(val), "heldout": frames(held), "shift_a": frames(val, shift_a, 2),
            "shift_b": frames(val, shift_b, 2)}


def score_checkpoint(checkpoint: str | Path, sets: Mapping[str, FrameSource],
                     device: str = "cpu") -> dict[str, dict[str, dict[str, float]]]:
    """``{set: {width: {"miou", "boundary_f1"}}}`` of ``checkpoint``, torch on ``device``."""
    engine = load_engine(checkpoint, backend="torch", device=device, warmup_repeats=1)
    out = {}
    for name, frames in sets.items():
        scores, _ = score_engine(engine, frames(), engine.widths, engine.meta.class_names)
        out[name] = {w: {"miou": r["miou"], "boundary_f1": r["boundary_f1"]}
                     for w, r in scores.items()}
    return out


def shifted_bag(root: str | Path, split: str, out: Path, labels: bool,
                camera: CameraShift = shift_a) -> Path:
    """CamVid ``split`` through ``camera(rgb, frame_index)`` as a 10 Hz bag of PNG-compressed
    frames at ``out`` (replaced if there), with labels or without; ``out``."""
    data = build_dataset("camvid", str(root), split)
    frames = ((camera(rgb, i), lab if labels else None) for i, (rgb, lab) in
              ((i, data.load(i)) for i in range(len(data))))
    bagio.write_frames_bag(out, frames, rate_hz=10, compressed="png", overwrite=True)
    return Path(out)
