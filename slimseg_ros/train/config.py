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
    "AugmentConfig", "DataConfig", "LossConfig", "MGDConfig", "OptimConfig", "TrainConfig",
    "load_train_config", "KD_MODES", "CE_MODES", "OPTIMIZERS",
]

KD_MODES = ("none", "inplace", "stepwise", "teacher")
CE_MODES = ("plain", "ohem")
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "camvid"
    root: str = "data/camvid"  # in the clone (docs/data.md says how to get it)
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (360, 480)
    scale_range: tuple[float, float] = (0.5, 1.75)
    batch_size: int = 8
    workers: int = 1
    val_size: tuple[int, int] = (360, 480)  # evaluation resolution (the deployment input size)
    options: dict[str, Any] = field(default_factory=dict)  # dataset-specific (e.g. folder classes)
    # keep only this fraction of the training frames' labels (a fixed random partition written
    # to ``partition``, default <out>/partition.json); 1.0 = every label
    labeled_fraction: float = 1.0
    partition: str = ""
    partition_seed: int = 0  # fixed, not the run's seed: every run of a comparison alike
    # unlabelled frames for semi-supervised training (MGD): "" = none, "partition" = the frames
    # whose labels labeled_fraction dropped, or a rosbag2 directory / image folder
    unlabeled: str = ""
    unlabeled_topic: str = ""  # the image topic of an unlabelled bag ("" = found)
    unlabeled_batch_size: int = 0  # 0 = batch_size


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation beyond scale + crop (see ``data.transforms.TrainTransform``)."""

    hflip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.02
    # another camera (``camera_jitter``): applied to this fraction of samples, 0 = off
    camera_prob: float = 0.0
    gamma: float = 1.0  # tone-curve exponent in [1/(1+g), 1+g]
    gain: float = 0.25  # per-channel white-balance gains in [1-g, 1+g]
    lift: float = 0.1  # raised black level, up to this fraction
    noise: float = 6.0  # Gaussian sensor noise, sigma up to this many grey levels
    blur: float = 0.25  # probability of a slight defocus blur

    def transform_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``TrainTransform`` for these settings."""
        camera = {k: getattr(self, k) for k in ("gamma", "gain", "lift", "noise", "blur")}
        return {"hflip_prob": self.hflip, "brightness": self.brightness,
                "contrast": self.contrast, "saturation": self.saturation, "hue": self.hue,
                "camera": camera if self.camera_prob > 0 else None,
                "camera_prob": self.camera_prob}


@dataclass(frozen=True)
class LossConfig:
    # none | inplace (teacher = widest) | stepwise (teacher = next wider) | teacher (every width
    # distils from the external loss.teacher's logits instead of a wider width's)
    kd: str = "stepwise"
    kd_weight: float = 1.0
    temperature: float = 1.0
    boundary_weight: float = 1.0  # 0 disables the boundary-guided term
    boundary_kernel: int = 7
    boundary_kd: bool = True  # also distil on boundary pixels (KD restricted to the mask)
    width_weights: tuple[float, ...] = ()  # per width (ascending order of widths); () = all 1
    # cross-entropy over all valid pixels (plain) or only the hard ones (ohem: pixels whose
    # true-class probability is below ohem_thresh, at least ohem_min_kept of the valid pixels):
    # thin classes (pole, sign, pedestrian) are few pixels, mostly hard ones
    ce: str = "plain"
    ohem_thresh: float = 0.7
    ohem_min_kept: float = 0.1
    # an external teacher (a checkpoint of this package, e.g. models/teacher_camvid.safetensors):
    # it is the KD teacher of the widest width (same kd_weight, temperature and boundary KD);
    # stepwise/inplace KD carries it down to the narrower widths. "" = none.
    teacher: str = ""
    # Knowledge Adaptation (used with a teacher; 0 turns a term off): beta and gamma of the paper
    ka_adapt_weight: float = 50.0
    ka_affinity_weight: float = 1.0
    ka_target: str = "widest"  # widest | all | adjacent (see train/ka.py)
    ka_latent: int = 256  # autoencoder code channels (0.5 x ResNet-18's 512)
    # stage 1: the autoencoder on the teacher's features; "" = <out>/ka_autoencoder.safetensors,
    # trained there first when missing (paper: lr 0.1, weight decay 1e-4)
    ka_autoencoder: str = ""
    ka_ae_steps: int = 300
    ka_ae_lr: float = 0.1


@dataclass(frozen=True)
class MGDConfig:
    """Multi-Granularity Distillation on unlabelled frames (train/mgd.py); on with
    data.unlabeled."""

    pixel_weight: float = 1.0  # SlimSeg loss on CutMix-mixed frames with pseudo labels
    pixel_labeled_weight: float = 1.0  # CE to the teachers' argmax on the labelled batch
    region_weight: float = 50.0  # region self-similarity (MGD lambda2, MobileNetV2 student)
    region_grid: int = 7
    image_weight: float = 0.02  # pooled-logit L1 (MGD lambda1 = 0.0005 on a 42-entry sum)
    external_teacher: bool = True  # loss.teacher as a teacher (when set)
    ema_teacher: bool = True  # the student's widest width, weight-averaged, as a teacher
    ema_decay: float = 0.99
    confidence: float = 0.0  # ignore pseudo labels whose mean teacher probability is lower
    # ... except each predicted class's most confident fraction of pixels (0 = off)
    class_fraction: float = 0.0
    cutmix_boxes: int = 3
    cutmix_area: tuple[float, float] = (0.25, 0.5)
    # teachers also predict each frame mirrored and average the two: pseudo labels from a
    # two-view ensemble (more accurate, docs/log/adapt.md "Three runs averaged") for one more
    # teacher forward per frame
    teacher_flip: bool = False
    # labelled-only steps before the unlabelled terms start: the mean teacher is then the
    # average of a trained student, not of a random one (MGD's teachers are trained first)
    start_step: int = 0


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
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mgd: MGDConfig = field(default_factory=MGDConfig)
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
    # start the encoder from torchvision's ImageNet MobileNetV2 weights (a .pth state dict or
    # safetensors; see model/imagenet.py); "" = random. Ignored when resuming.
    encoder_init: str = ""
    # exponential moving average of the weights (0 = off): validated and saved instead of the
    # raw weights; smooths the noise of small batches late in a short schedule
    ema_decay: float = 0.0
    save_fp16: bool = False  # store checkpoint weights in fp16 (half the file; loads as fp32)

    def __post_init__(self) -> None:
        if self.loss.kd not in KD_MODES:
            raise ValueError(f"loss.kd must be one of {KD_MODES}, got {self.loss.kd!r}")
        if self.loss.kd == "teacher" and not self.loss.teacher:
            raise ValueError("loss.kd=teacher needs an external teacher: set loss.teacher")
        if self.loss.ce not in CE_MODES:
            raise ValueError(f"loss.ce must be one of {CE_MODES}, got {self.loss.ce!r}")
        if not 0.0 < self.loss.ohem_min_kept <= 1.0 or not 0.0 < self.loss.ohem_thresh <= 1.0:
            raise ValueError("loss.ohem_thresh and loss.ohem_min_kept must be in (0, 1]")
        if not 0.0 < self.data.labeled_fraction <= 1.0:
            raise ValueError(f"data.labeled_fraction must be in (0, 1], "
                             f"got {self.data.labeled_fraction}")
        if self.data.unlabeled == "partition" and self.data.labeled_fraction >= 1.0:
            raise ValueError("data.unlabeled=partition needs data.labeled_fraction < 1")
        if self.init_checkpoint and self.encoder_init:
            raise ValueError("init_checkpoint and encoder_init both set: a checkpoint already "
                             "holds every weight, choose one")
        if self.loss.ka_target not in ("widest", "all", "adjacent"):
            raise ValueError(f"loss.ka_target must be widest, all or adjacent, "
                             f"got {self.loss.ka_target!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.optim.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, "
                             f"got {self.optim.optimizer!r}")
        bad = [w for w in self.train_widths if w not in self.model.widths]
        if bad:
            raise ValueError(f"train_widths {bad} are not model widths {list(self.model.widths)}")
        if self.loss.width_weights and len(self.loss.width_weights) != len(self.model.widths):
            raise ValueError("loss.width_weights needs one weight per model width")
        if self.steps < 1 or self.data.batch_size < 1:
            raise ValueError("steps and data.batch_size must be >= 1")
        if self.data.unlabeled and not 0 <= self.mgd.start_step < self.steps:
            raise ValueError(f"mgd.start_step must be in [0, steps={self.steps}), got "
                             f"{self.mgd.start_step}: the unlabelled frames would go unused")
        if not (0.0 <= self.mgd.confidence < 1.0 and 0.0 <= self.mgd.class_fraction <= 1.0):
            raise ValueError("mgd.confidence must be in [0, 1) and mgd.class_fraction in [0, 1]")

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


# keys of earlier versions, with what replaced them (a config written for them fails in words)
_REMOVED = {
    "loss.affinity_weight": "it compared 7x7-pooled logits between widths, which is not an "
                            "affinity of features; Knowledge Adaptation's pixel-pair affinity is "
                            "loss.ka_affinity_weight (with loss.teacher)",
    "loss.image_kd_weight": "the image-level term is MGD's: mgd.image_weight",
}


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    for key in unknown:
        if where + key in _REMOVED:
            raise ValueError(f"{where + key} was removed: {_REMOVED[where + key]}")
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
            if isinstance(default, float) and isinstance(value, str):
                # YAML reads 1e-3 (no dot) as a string; every float field takes it as a number
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{where}{name} must be a number, got {value!r}") from None
            kwargs[name] = (tuple(value) if isinstance(default, tuple) and value is not None
                            else value)
    return cls(**kwargs)


_SECTIONS: dict[str, type] = {
    "model": ModelConfig, "data": DataConfig, "loss": LossConfig, "augment": AugmentConfig,
    "mgd": MGDConfig, "optim": OptimConfig,
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
    """Read a YAML recipe (or the defaults when ``path`` is None) and apply ``key=value``
    overrides."""
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
