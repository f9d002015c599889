"""Safe checkpoints: safetensors weights + JSON metadata. No pickle anywhere.

The metadata carries everything a deployment needs besides the weights (architecture, widths,
channel rule, classes, palette, input size, normalisation, ignore index, training summary,
package version), so launch files never repeat it. Loading validates the file and fails with one
sentence naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .. import __version__
from .config import ModelConfig
from .slimseg import SlimSegNet

__all__ = [
    "CheckpointError",
    "CheckpointMeta",
    "save_checkpoint",
    "load_checkpoint",
    "read_metadata",
    "file_sha256",
    "random_meta",
    "save_random_checkpoint",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

FORMAT_VERSION = "1"
CHANNEL_RULE = "make_divisible(c * w, divisor), +divisor when rounding loses more than 10%"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_KEY = "slimseg"  # one metadata entry holding a JSON document


class CheckpointError(ValueError):
    """A checkpoint file is missing, not safetensors, or does not describe a SlimSeg model."""


@dataclass(frozen=True)
class CheckpointMeta:
    """What travels with the weights."""

    config: ModelConfig
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int] = (360, 480)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    ignore_index: int = 255
    training: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.class_names)
        palette = tuple(tuple(int(v) for v in c) for c in self.palette)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        k = self.config.num_classes
        if len(names) != k:
            raise CheckpointError(f"{len(names)} class names for a {k}-class model")
        if len(palette) != k or any(len(c) != 3 or min(c) < 0 or max(c) > 255 for c in palette):
            raise CheckpointError(f"the palette needs {k} RGB triples in 0..255")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise CheckpointError(f"input_size must be [H, W] >= 8, got {list(self.input_size)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise CheckpointError("mean and std need 3 values each, std > 0")

    @property
    def widths(self) -> tuple[float, ...]:
        return self.config.widths

    def to_json(self) -> str:
        doc = {
            "format": FORMAT_VERSION,
            "model": self.config.to_dict(),
            "channel_rule": CHANNEL_RULE,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "ignore_index": self.ignore_index,
            "training": dict(self.training),
            "version": self.version,
        }
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "checkpoint") -> "CheckpointMeta":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{source}: the slimseg metadata is not valid JSON ({exc})")
        required = ("format", "model", "class_names", "palette", "input_size", "mean", "std")
        missing = [k for k in required if k not in doc]
        if missing:
            raise CheckpointError(f"{source}: metadata lacks {', '.join(missing)}")
        if str(doc["format"]) != FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format {doc['format']!r}, "
                f"this package reads {FORMAT_VERSION!r}"
            )
        try:
            config = ModelConfig.from_dict(doc["model"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        return cls(
            config=config,
            class_names=doc["class_names"],
            palette=doc["palette"],
            input_size=doc["input_size"],
            mean=doc["mean"],
            std=doc["std"],
            ignore_index=int(doc.get("ignore_index", 255)),
            training=doc.get("training", {}),
            version=str(doc.get("version", "unknown")),
        )

    def replace(self, **changes: Any) -> "CheckpointMeta":
        return dataclasses.replace(self, **changes)


def save_checkpoint(path: str | os.PathLike[str], model: SlimSegNet, meta: CheckpointMeta,
                    dtype: torch.dtype | None = None) -> Path:
    """Write weights and metadata atomically (temp file + rename); returns the path.

    ``dtype=torch.float16`` stores floating-point tensors in half precision (half the file; they
    load back as fp32, so only storage rounding is lost).
    """
    from safetensors.torch import save_file

    if meta.config != model.config:
        raise CheckpointError("the metadata's model config differs from the model's")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_KEY: meta.to_json()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _open(path: Path):  # noqa: ANN202 - safetensors' handle type is private
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error types for every header problem
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})"
        ) from None


def read_metadata(path: str | os.PathLike[str]) -> CheckpointMeta:
    """Only the metadata (cheap: reads the header, not the tensors)."""
    path = Path(path)
    with _open(path) as handle:
        metadata = handle.metadata() or {}
    if _KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file without slimseg metadata")
    return CheckpointMeta.from_json(metadata[_KEY], source=str(path))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[SlimSegNet, CheckpointMeta]:
    """Rebuild the model from a checkpoint; every tensor is checked for presence and shape."""
    path = Path(path)
    meta = read_metadata(path)
    model = SlimSegNet(meta.config)
    expected = model.state_dict()
    with _open(path) as handle:
        present = set(handle.keys())
        missing = [k for k in expected if k not in present]
        if missing:
            raise CheckpointError(
                f"{path}: missing tensor {missing[0]!r} ({len(missing)} missing in all)"
            )
        unexpected = sorted(present - set(expected))
        if unexpected:
            raise CheckpointError(f"{path}: unexpected tensor {unexpected[0]!r} "
                                  f"for {meta.config.arch}")
        state = {}
        for key, ref in expected.items():
            try:
                tensor = handle.get_tensor(key)
            except Exception as exc:  # truncated data surfaces here
                raise CheckpointError(f"{path}: tensor {key!r} is unreadable ({exc})") from None
            if tensor.shape != ref.shape:
                raise CheckpointError(
                    f"{path}: tensor {key!r} has shape {list(tensor.shape)}, "
                    f"the architecture needs {list(ref.shape)}"
                )
            state[key] = tensor
    model.load_state_dict(state)
    return model.eval(), meta


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_class_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """A deterministic, well-spread palette for models without their own."""
    g = torch.Generator().manual_seed(1234)
    colours = torch.randint(40, 256, (num_classes, 3), generator=g)
    return [tuple(int(v) for v in c) for c in colours]


def random_meta(config: ModelConfig, input_size: Sequence[int] = (360, 480)) -> CheckpointMeta:
    """Metadata for an untrained model (benchmarks and tests without a trained checkpoint)."""
    return CheckpointMeta(
        config=config,
        class_names=[f"class_{i}" for i in range(config.num_classes)],
        palette=default_class_palette(config.num_classes),
        input_size=tuple(input_size),  # type: ignore[arg-type]
        training={"dataset": None, "note": "randomly initialised"},
    )


def save_random_checkpoint(path: str | os.PathLike[str], config: ModelConfig | None = None,
                           input_size: Sequence[int] = (360, 480), seed: int = 0) -> Path:
    """Write a randomly initialised model (``seed``) with :func:`random_meta`; returns the path.

    What the demo runs when the trained model is missing, and the tests' stand-in model: speed,
    widths and plumbing do not depend on the weights.
    """
    config = config or ModelConfig()
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
        torch.manual_seed(seed)
        model = SlimSegNet(config).eval()
    return save_checkpoint(path, model, random_meta(config, input_size))
