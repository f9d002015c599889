"""Build a :class:`SegmentationEngine` from a checkpoint: choose the backend, build, warm up."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..model.checkpoint import CheckpointMeta, load_checkpoint, random_meta
from ..model.config import ModelConfig
from ..model.slimseg import SlimSegNet
from .backends import BACKEND_NAMES, build_runners, choose_backend
from .engine import SegmentationEngine

__all__ = ["load_engine", "default_model_path", "DEFAULT_MODEL_NAME", "load_model"]

DEFAULT_MODEL_NAME = "slimseg_camvid.safetensors"
PRECISIONS = ("fp32", "fp16")


def default_model_path() -> Path | None:
    """The shipped default model: source checkout, then ``<prefix>/share/slimseg_ros/models``."""
    candidates = [Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_NAME]
    for prefix in dict.fromkeys([sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(":")]):
        if prefix:
            candidates.append(Path(prefix) / "share" / "slimseg_ros" / "models" / DEFAULT_MODEL_NAME)
    return next((p for p in candidates if p.is_file()), None)


def load_model(model_path: str | os.PathLike[str] | None,
               allow_random: bool = False) -> tuple[SlimSegNet, CheckpointMeta, str]:
    """(model, metadata, description); ``None`` means the shipped default model.

    With ``allow_random`` and no default model, a randomly initialised network stands in
    (benchmarks measure speed, which does not depend on the weights).
    """
    path = Path(model_path) if model_path else default_model_path()
    if path is None:
        if not allow_random:
            raise FileNotFoundError(
                f"no model given and the default model {DEFAULT_MODEL_NAME} is not installed"
            )
        model = SlimSegNet(ModelConfig()).eval()
        return model, random_meta(model.config), "randomly initialised (no default model found)"
    model, meta = load_checkpoint(path)
    return model, meta, str(path)


def load_engine(
    model_path: str | os.PathLike[str] | None = None,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    input_size: Sequence[int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    upsample: str = "nearest",
    warmup_repeats: int = 5,
    allow_random: bool = False,
    log: Callable[[str], None] | None = None,
) -> SegmentationEngine:
    """Load a checkpoint and make every width ready on one backend.

    Args:
        model_path: a ``.safetensors`` checkpoint; ``None`` = the shipped default model.
        backend: ``auto`` | one of :data:`BACKEND_NAMES`; ``auto`` logs what it chose and why.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        precision: ``fp32`` | ``fp16`` (GPU only).
        input_size: (H, W) the network runs at; default: the checkpoint's.
        cache_dir: where compiled per-width artifacts are kept (ONNX, TensorRT).
        upsample: label upsampling mode of the pipeline (``nearest`` | ``bilinear``).
        warmup_repeats: timed runs per width after warm-up (seeds the controller).
    """
    say = log or (lambda _msg: None)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be auto or one of {', '.join(BACKEND_NAMES)}, got {backend!r}")
    model, meta, source = load_model(model_path, allow_random=allow_random)
    size = tuple(int(v) for v in (input_size or meta.input_size))
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"input_size must be [H, W] with both >= 32, got {list(size)}")
    meta = meta.replace(input_size=size)
    notes = [f"model: {source}"]
    chosen, why = (backend, "requested") if backend != "auto" else choose_backend(device, precision)
    notes.append(f"backend {chosen}: {why}")
    for note in notes:
        say(note)
    checkpoint = None if source.startswith("randomly") else source
    runners, used_device, build_notes = build_runners(
        chosen, model, meta, device=device, precision=precision, cache_dir=cache_dir,
        upsample=upsample, model_path=checkpoint,
    )
    for note in build_notes:
        say(note)
    engine = SegmentationEngine(
        runners=runners, meta=meta, backend=chosen, device=used_device, precision=precision,
        input_size=size, notes=notes + list(build_notes), model_path=checkpoint,
    )
    latency = engine.warm_up(repeats=warmup_repeats)
    say("warm-up latency: " + ", ".join(f"w{w:g} {s * 1e3:.1f} ms" for w, s in latency.items()))
    return engine
