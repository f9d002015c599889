"""Training configuration: YAML mapped onto frozen dataclasses, every value overridable.

``load_train_config("config/train_camvid.yaml", ["optim.lr=0.002", "steps=500"])`` reads the file,
applies ``section.key=value`` overrides (values parsed as YAML scalars/lists), and rejects unknown
keys by name: a misspelt option is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..model.config import ModelConfig

__all__ = [
    "DataConfig", "LossConfig", "OptimConfig", "TrainConfig", "load_train_config",
    "KD_MODES", "OPTIMIZERS",
]

KD_MODES = ("none", "inplace", "stepwise")
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "camvid"
    root: str = "../shared/data/camvid"
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (360, 480)
    scale_range: tuple[float, float] = (0.5, 1.75)
    batch_size: int = 8
    workers: int = 1
    val_size: tuple[int, int] = (360, 480)  # evaluation resolution (the deployment input size)
    options: dict[str, Any] = field(default_factory=dict)  # dataset-specific (e.g. folder classes)


@dataclass(frozen=True)
class LossConfig:
    kd: str = "stepwise"  # none | inplace (teacher = widest) | stepwise (teacher = next wider)
    kd_weight: float = 1.0
    temperature: float = 1.0
    boundary_weight: float = 1.0  # 0 disables the boundary-guided term
    boundary_kernel: int = 7
    boundary_kd: bool = True  # also distil on boundary pixels (KD restricted to the mask)
    width_weights: tuple[float, ...] = ()  # per width (ascending order of widths); () = all 1
    # optional terms from the other papers, between each width and its KD teacher (0 = off)
    affinity_weight: float = 0.0  # Knowledge Adaptation / MGD region-level affinity matching
    affinity_grid: int = 7
    image_kd_weight: float = 0.0  # MGD image-level: L1 of globally pooled logits


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    poly_power: float = 0.9
    warmup_steps: int = 50
    grad_clip: float = 5.0


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train_widths: tuple[float, ...] = ()  # () = every model width; one width = independent net
    steps: int = 2000
    val_every: int = 250  # steps between per-width validations (0 = only at the end)
    val_images: int = 0  # 0 = the whole val split
    log_every: int = 10
    checkpoint_every: int = 100  # resumable state, written atomically
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda[:N]
    amp: bool = True  # mixed precision on CUDA (ignored on the CPU)
    threads: int = 0  # torch CPU threads, 0 = leave torch's default
    out: str = "runs/slimseg"
    time_limit_min: float = 0.0  # stop cleanly after this many minutes (0 = no limit)
    # start from this checkpoint's weights (fine-tuning, e.g. on the robot's own bags); fresh
    # optimiser and schedule; "" = random initialisation. Ignored when resuming from ``out``.
    init_checkpoint: str = ""

    def __post_init__(self) -> None:
        if self.loss.kd not in KD_MODES:
            raise ValueError(f"loss.kd must be one of {KD_MODES}, got {self.loss.kd!r}")
        if self.optim.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optim.optimizer!r}")
        bad = [w for w in self.train_widths if w not in self.model.widths]
        if bad:
            raise ValueError(f"train_widths {bad} are not model widths {list(self.model.widths)}")
        if self.loss.width_weights and len(self.loss.width_weights) != len(self.model.widths):
            raise ValueError("loss.width_weights needs one weight per model width")
        if self.steps < 1 or self.data.batch_size < 1:
            raise ValueError("steps and data.batch_size must be >= 1")

    @property
    def widths_to_train(self) -> tuple[float, ...]:
        return tuple(self.train_widths) or self.model.widths

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(where + k for k in unknown)}; "
                         f"known under {where or 'top level'}: {', '.join(sorted(fields))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _SECTIONS.get(name) if cls is TrainConfig else None
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}{name} must be a mapping")
            kwargs[name] = (ModelConfig.from_dict(value) if sub is ModelConfig
                            else _build(sub, value, f"{where}{name}."))
        else:
            default = getattr(cls(), name) if cls is not TrainConfig else getattr(_DEFAULT, name)
            kwargs[name] = tuple(value) if isinstance(default, tuple) and value is not None else value
    return cls(**kwargs)


_SECTIONS: dict[str, type] = {
    "model": ModelConfig, "data": DataConfig, "loss": LossConfig, "optim": OptimConfig,
}
_DEFAULT = TrainConfig()


def _set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML recipe (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    doc: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
        doc = loaded
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        _set_dotted(doc, key.strip(), yaml.safe_load(raw))
    return _build(TrainConfig, doc, "")
