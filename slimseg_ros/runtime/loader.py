"""Build a :class:`SegmentationEngine` from a checkpoint: choose the backend, build, warm up."""

from __future__ import annotations

import calendar
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..model.checkpoint import (
    CheckpointError, CheckpointMeta, load_checkpoint, random_meta, read_metadata)
from ..model.config import ModelConfig
from ..model.slimseg import SlimSegNet
from .backends import (
    BACKEND_NAMES, build_runners, choose_backend, cpu_record, implausible_record)
from .engine import SegmentationEngine
from ..sizes import MIN_INPUT_SIDE, check_size, format_size, parse_sizes
from .points import OperatingPoint, PointEngine
from .timing import load_average

__all__ = ["load_engine", "load_point_engine", "default_model_path", "DEFAULT_MODEL_NAME",
           "DEFAULT_TEACHER_NAME",
           "load_model", "model_metadata", "resolve_model_path"]

DEFAULT_MODEL_NAME = "slimseg_camvid.safetensors"
DEFAULT_TEACHER_NAME = "teacher_camvid.safetensors"  # the shipped model's teacher (ResNet-18)
PRECISIONS = ("fp32", "fp16")


def default_model_path(name: str = DEFAULT_MODEL_NAME) -> Path | None:
    """The shipped default model (or the shipped file ``name``, e.g. the teacher): source
    checkout, then ``<prefix>/share/slimseg_ros/models``."""
    candidates = [Path(__file__).resolve().parents[2] / "models" / name]
    for prefix in dict.fromkeys([sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(":")]):
        if prefix:
            candidates.append(
                Path(prefix) / "share" / "slimseg_ros" / "models" / name)
    return next((p for p in candidates if p.is_file()), None)


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path | None:
    """The checkpoint file ``model_path`` names (None/empty: the shipped default model, or None
    when it is not installed).

    Raises:
        CheckpointError: the path does not exist, or is a directory (the message lists the
            ``.safetensors`` files in it), so a user reads what to give instead.
    """
    if not model_path:
        return default_model_path()
    path = Path(model_path).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        hint = (f"it holds {', '.join(found[:5])}{' ...' if len(found) > 5 else ''}"
                if found else "it holds no .safetensors file")
        raise CheckpointError(f"{path} is a directory, not a checkpoint file; give the "
                              f".safetensors file itself ({hint})")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def model_metadata(model_path: str | os.PathLike[str] | None) -> tuple[Path, CheckpointMeta]:
    """The checkpoint file ``model_path`` names (empty: the shipped model) and its metadata
    (widths, class names, palette, input size): reads only the header, milliseconds, so a node
    can validate its parameters long before the engines exist.

    Raises:
        FileNotFoundError: no model given and none installed.
        CheckpointError: no such file, a directory, or not a readable checkpoint (the message
            says why).
    """
    path = resolve_model_path(model_path)
    if path is None:
        raise FileNotFoundError(f"no model_path given and the default model "
                                f"{DEFAULT_MODEL_NAME} is not installed")
    try:
        return path, read_metadata(path)
    except CheckpointError as exc:
        raise CheckpointError(_explained(path, exc)) from None


_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _explained(path: Path, exc: CheckpointError) -> str:
    """``exc``'s text, plus what the file looks like when it is a PyTorch pickle."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return str(exc)
    if head.startswith(_PICKLE_MAGIC):
        return (f"{path} looks like a PyTorch pickle (torch.save), not a .safetensors "
                "checkpoint; slimseg_ros never unpickles a file it is given: save the model "
                "with slimseg_ros (model.checkpoint.save_checkpoint) or convert its state dict "
                "with safetensors")
    return str(exc)


def load_model(model_path: str | os.PathLike[str] | None,
               allow_random: bool = False) -> tuple[SlimSegNet, CheckpointMeta, str]:
    """(model, metadata, description); ``None`` means the shipped default model.

    With ``allow_random`` and no default model, a randomly initialised network stands in
    (benchmarks measure speed, which does not depend on the weights).
    """
    path = resolve_model_path(model_path)
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
        raise ValueError(f"backend must be auto or one of {', '.join(BACKEND_NAMES)}, "
                         f"got {backend!r}")
    model, meta, source = load_model(model_path, allow_random=allow_random)
    size = check_size(input_size or meta.input_size, MIN_INPUT_SIDE, "input_size")
    meta = meta.replace(input_size=size)
    notes = [f"model: {source}"]
    checkpoint = None if source.startswith("randomly") else source
    say(notes[0])
    auto = dict(model=model, meta=meta, cache_dir=cache_dir, upsample=upsample,
                model_path=checkpoint)
    chosen, why = (backend, "requested") if backend != "auto" else choose_backend(
        device, precision, **auto)
    engine = _build(chosen, why, model, meta, notes, say, device=device, precision=precision,
                    cache_dir=cache_dir, upsample=upsample, model_path=checkpoint,
                    warmup_repeats=warmup_repeats)
    doubt = _doubt_cpu_choice(engine, model, meta, cache_dir, upsample) if (
        backend == "auto" and engine.device == "cpu") else None
    if doubt:
        say(f"backend auto: the cached CPU measurement is implausible ({doubt}); measuring "
            "again")
        again, why = choose_backend(device, precision, force=True, **auto)
        if again != chosen:
            engine.close()
            engine = _build(again, why, model, meta, notes, say, device=device,
                            precision=precision, cache_dir=cache_dir, upsample=upsample,
                            model_path=checkpoint, warmup_repeats=warmup_repeats)
        else:
            say(f"backend {chosen}: {why}")
    return engine


def load_point_engine(
    model_path: str | os.PathLike[str] | None = None,
    *,
    input_sizes: Sequence[Sequence[int]] | None = None,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
    upsample: str = "nearest",
    warmup_repeats: int = 5,
    allow_random: bool = False,
    log: Callable[[str], None] | None = None,
) -> PointEngine:
    """Every operating point (width x input size) of a checkpoint, built and warmed up.

    The first size is built by :func:`load_engine` (so ``auto`` chooses the backend there,
    once); every other size is built on the same backend and device. Each size's compiled
    artifacts have their own cache entries (the cache keys hold the input size). ``input_sizes``
    None or one size is exactly :func:`load_engine`.

    Raises:
        ValueError: a malformed or repeated size (and whatever :func:`load_engine` raises).
    """
    say = log or (lambda _msg: None)
    sizes = parse_sizes(input_sizes, MIN_INPUT_SIDE) if input_sizes else [None]
    first = load_engine(model_path, backend=backend, device=device, precision=precision,
                        input_size=sizes[0], cache_dir=cache_dir, upsample=upsample,
                        warmup_repeats=warmup_repeats, allow_random=allow_random, log=log)
    engines = {tuple(first.input_size): first}
    try:
        if len(sizes) > 1:
            model, meta, _source = load_model(model_path, allow_random=allow_random)
            for size in sizes[1:]:
                say(f"input size {format_size(size)}:")
                engines[size] = _build(
                    first.backend, f"as for {format_size(first.input_size)}", model,
                    meta.replace(input_size=size), list(first.notes[:1]), say,
                    device=first.device, precision=precision, cache_dir=cache_dir,
                    upsample=upsample, model_path=first.model_path,
                    warmup_repeats=warmup_repeats)
    except BaseException:
        for engine in engines.values():
            engine.close()
        raise
    points = PointEngine(engines, tuple(first.input_size))  # type: ignore[arg-type]
    points.gflops = _point_gflops(model_path, allow_random, points)
    return points


def _point_gflops(model_path: str | os.PathLike[str] | None, allow_random: bool,
                  engine: PointEngine) -> dict[OperatingPoint, float]:
    """FLOPs counted per width at the primary size, scaled to every size by its pixel count
    (the network is fully convolutional: its work is proportional to the pixels, up to
    rounding at the strides), so start-up pays for 4 counts, not 12."""
    from ..model.profile import count_flops

    model, _meta, _source = load_model(model_path, allow_random=allow_random)
    h, w = engine.primary
    out = {}
    for width in engine.widths:
        gflops = count_flops(model.freeze(width), (h, w)) / 1e9
        for size in engine.sizes:
            out[OperatingPoint(width, size)] = gflops * size[0] * size[1] / (h * w)
    return out


def _build(chosen: str, why: str, model: SlimSegNet, meta: CheckpointMeta, notes: list[str],
           say: Callable[[str], None], *, warmup_repeats: int, **options: Any
           ) -> SegmentationEngine:
    """Runners of ``chosen`` for every width, warmed up, as an engine."""
    say(f"backend {chosen}: {why}")
    runners, used_device, build_notes = build_runners(chosen, model, meta, **options)
    for note in build_notes:
        say(note)
    engine = SegmentationEngine(
        runners=runners, meta=meta, backend=chosen, device=used_device,
        precision=options["precision"], input_size=tuple(meta.input_size),
        notes=[*notes, f"backend {chosen}: {why}", *build_notes],
        model_path=options["model_path"],
    )
    latency = engine.warm_up(repeats=warmup_repeats)
    say("warm-up latency: " + ", ".join(f"w{w:g} {s * 1e3:.1f} ms" for w, s in latency.items()))
    return engine


def _doubt_cpu_choice(engine: SegmentationEngine, model: SlimSegNet, meta: CheckpointMeta,
                      cache_dir: str | os.PathLike[str] | None, upsample: str) -> str | None:
    """Why the cached measurement that chose ``engine``'s backend looks wrong now, or None
    (also None when it was measured moments ago, or there is none)."""
    record = cpu_record(model, meta, cache_dir=cache_dir, upsample=upsample)
    if record is None or engine.backend not in record["ms"]:
        return None
    measured = record.get("measured_at", "")
    try:
        age_s = time.time() - calendar.timegm(time.strptime(measured, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        age_s = float("inf")
    if age_s < 120.0:  # measured for this very start
        return None
    widths = engine.widths
    now_ms = 1e3 * (engine.latency_s[widths[0]] + engine.latency_s[widths[-1]])
    return implausible_record(record, engine.backend, now_ms, load_average()[0],
                              os.cpu_count() or 1)
