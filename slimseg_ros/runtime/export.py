"""``slimseg export``: build every operating point's artifact ahead of time into the engine cache.

The output directory is what the node's ``engine_cache_dir`` parameter points at; the node then
starts from cache hits instead of building (a TensorRT build takes minutes per width and input
size, and a node with ``input_sizes`` needs one engine per width at every size). Each
artifact is checked once after it is built or found: its labels on a synthetic frame are
compared with the torch backend's (a smoke test; real parity is ``slimseg eval --backend ...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..model.checkpoint import CheckpointMeta
from ..model.slimseg import SlimSegNet
from ..sizes import MIN_INPUT_SIDE, check_size, format_size, parse_sizes
from ..widths import parse_widths
from .cache import EngineCache, model_fingerprint
from .deps import import_onnx_exporter
from .loader import load_model
from .onnx_backend import OrtRunner, make_session, onnx_builder, onnx_key
from .tensorrt_backend import build_tensorrt_engines
from .torch_backend import pipeline_for_width

__all__ = ["ExportRecord", "export_engines", "FORMATS"]

FORMATS = ("onnx", "tensorrt")


@dataclass(frozen=True)
class ExportRecord:
    """One operating point's artifact.

    Attributes:
        width: the width.
        input_size: (H, W) of the static input.
        fmt: ``onnx`` | ``tensorrt``.
        path: the artifact in the cache directory.
        size_bytes: its size.
        build_seconds: time spent building it now (0.0 when a valid one was already there).
        status: ``built`` | ``rebuilt`` (with ``reason``) | ``cached``.
        reason: why an existing artifact was rebuilt (version change, corrupt file, ...).
        agreement: fraction of pixels whose label equals the fp32 torch backend's on a
            synthetic frame (None when the check could not run here, e.g. no ONNX Runtime).
    """

    width: float
    input_size: tuple[int, int]
    fmt: str
    path: Path
    size_bytes: int
    build_seconds: float
    status: str
    reason: str = ""
    agreement: float | None = None


def _check_frame(size: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic RGB frame (blobs, not noise: closer to what the network was made for)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (1, 3, max(2, size[0] // 32), max(2, size[1] // 32)))
    smooth = torch.nn.functional.interpolate(torch.tensor(coarse, dtype=torch.float32),
                                             size=size, mode="bilinear", align_corners=False)
    return smooth.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _reference_labels(model: SlimSegNet, meta: CheckpointMeta, width: float, upsample: str,
                      frame: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return pipeline_for_width(model, meta, width, upsample)(torch.from_numpy(frame)).numpy()


def export_engines(
    checkpoint: str | os.PathLike[str] | None,
    fmt: str,
    widths: str | Sequence[float] = "all",
    input_size: Sequence[int] | None = None,
    precision: str = "fp32",
    out_dir: str | os.PathLike[str] = "engines",
    log: Callable[[str], None] | None = None,
    *,
    upsample: str = "nearest",
    device: str = "auto",
    force: bool = False,
    input_sizes: str | Sequence[Sequence[int]] | None = None,
) -> list[ExportRecord]:
    """Build (or verify) the artifact of every requested width at every input size; one record
    per (size, width), sizes in the order given.

    Args:
        checkpoint: ``.safetensors`` model; ``None`` = the shipped default model.
        fmt: ``onnx`` (portable; built on any machine, fp16 too) or ``tensorrt`` (built on the
            target Jetson: engines are specific to its TensorRT, GPU and L4T release).
        widths: ``"all"``, ``"0.25,1.0"`` or a sequence of widths.
        input_size: (H, W) of the static input; default: the checkpoint's.
        input_sizes: several (H, W) sizes, or ``"360x480,270x360"``, instead of
            ``input_size`` (the node's ``input_sizes``): every width is built at each, under the
            node's cache keys.
        precision: ``fp32`` | ``fp16``.
        out_dir: the engine cache directory.
        log: receives one line per size and per point (status, build time, size).
        upsample: the pipeline's label upsampling (must match the node's).
        device: CUDA device for ``tensorrt`` (``auto`` | ``cuda[:N]``).
        force: rebuild even valid artifacts.
    """
    say = log or (lambda _m: None)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    if input_size is not None and input_sizes:
        raise ValueError("give input_size or input_sizes, not both")
    model, meta, source = load_model(checkpoint)
    if input_sizes:
        sizes = parse_sizes(input_sizes, MIN_INPUT_SIDE)  # validates each size and refuses repeats
    else:
        sizes = [check_size(input_size or meta.input_size, MIN_INPUT_SIDE, "input_size")]
    chosen = parse_widths(widths, model.widths)
    records: list[ExportRecord] = []
    for size in sizes:
        sized = meta.replace(input_size=tuple(size))
        say(f"exporting {fmt} {precision} {format_size(size)} widths "
            f"{', '.join(f'{w:g}' for w in chosen)} of {source} into {out_dir}")
        if fmt == "onnx":
            records += _export_onnx(model, sized, source, chosen, precision, upsample,
                                    Path(out_dir), force, say)
        else:
            records += _export_tensorrt(model, sized, source, chosen, precision, upsample,
                                        Path(out_dir), device, force, say)
    return records


def _export_onnx(model: SlimSegNet, meta: CheckpointMeta, source: str, widths: Sequence[float],
                 precision: str, upsample: str, root: Path, force: bool,
                 say: Callable[[str], None]) -> list[ExportRecord]:
    import_onnx_exporter()
    cache = EngineCache(root)
    sha = model_fingerprint(model, source)
    frame = _check_frame(tuple(meta.input_size))
    records = []
    for width in widths:
        key = onnx_key(sha, width, meta.input_size, precision, upsample)
        # the artifact is device independent; the CPU session proves it loads and runs
        session, outcome = cache.get_or_build(
            key, onnx_builder(model, meta, width, precision, upsample),
            lambda path: _cpu_session_or_none(path), force=force,
        )
        agreement = None
        if session is not None:
            labels = OrtRunner(session)(frame)
            agreement = float((labels == _reference_labels(model, meta, width, upsample,
                                                            frame)).mean())
        records.append(_record(width, meta, "onnx", outcome, agreement))
        say(_describe(records[-1], outcome.describe(
            f"onnx {format_size(meta.input_size)} w{width:g}")))
    return records


def _cpu_session_or_none(path: Path) -> Any:
    """A CPU session when ONNX Runtime is installed; otherwise the ONNX checker validates."""
    try:
        return make_session(path, "cpu")
    except ImportError:
        import onnx

        onnx.checker.check_model(str(path), full_check=True)
        return None


def _export_tensorrt(model: SlimSegNet, meta: CheckpointMeta, source: str,
                     widths: Sequence[float], precision: str, upsample: str, root: Path,
                     device: str, force: bool, say: Callable[[str], None]) -> list[ExportRecord]:
    frame = _check_frame(tuple(meta.input_size))
    records = []
    for width in widths:  # one at a time, so each width's line appears when it is done
        runners, _, outcomes, _ = build_tensorrt_engines(
            model, meta, device=device, precision=precision, cache_dir=root, upsample=upsample,
            model_path=source, widths=[width], force=force,
        )
        labels = runners[width](frame)
        agreement = float((labels == _reference_labels(model, meta, width, upsample,
                                                        frame)).mean())
        records.append(_record(width, meta, "tensorrt", outcomes[width], agreement))
        say(_describe(records[-1], outcomes[width].describe(
            f"tensorrt {format_size(meta.input_size)} w{width:g}")))
    return records


def _record(width: float, meta: CheckpointMeta, fmt: str, outcome: Any,
            agreement: float | None) -> ExportRecord:
    status = "cached" if outcome.status == "hit" else outcome.status
    size = (int(meta.input_size[0]), int(meta.input_size[1]))
    return ExportRecord(width, size, fmt, outcome.path, outcome.size_bytes, outcome.build_s,
                        status, outcome.reason, agreement)


def _describe(record: ExportRecord, line: str) -> str:
    if record.agreement is None:
        return line
    return f"{line}; labels equal torch's on {100 * record.agreement:.2f}% of a check frame"
