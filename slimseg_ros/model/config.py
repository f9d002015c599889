"""Model configuration: a frozen dataclass that round-trips through JSON (checkpoint metadata)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ..widths import width_key  # its home is widths.py; train/ and scripts import it from here

__all__ = ["ModelConfig", "ARCHITECTURES", "DEFAULT_WIDTHS", "width_key"]

DEFAULT_WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
# mobilenetv2_lraspp: the deployable slimmable student; resnet18_lraspp: a stronger encoder (the
# distillation teacher), same decoder
ARCHITECTURES: tuple[str, ...] = ("mobilenetv2_lraspp", "resnet18_lraspp")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network's module tree (not its weights).

    Attributes:
        arch: architecture name, one of :data:`ARCHITECTURES`.
        num_classes: classifier outputs (never slimmed).
        widths: the executable widths, ascending, in (0, 1]; the widest must be 1.0.
        channel_divisor: channels per width are ``make_divisible(c * w, channel_divisor)``;
            8 keeps every width tensor-core friendly. Stored because it changes every shape.
        output_stride: encoder stride (16 with a dilated last stage, or 32).
        head_channels: decoder width at 1.0 (slims with the encoder).
    """

    arch: str = "mobilenetv2_lraspp"
    num_classes: int = 11
    widths: tuple[float, ...] = DEFAULT_WIDTHS
    channel_divisor: int = 8
    output_stride: int = 16
    head_channels: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(float(w) for w in self.widths))
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; "
                             f"known: {', '.join(ARCHITECTURES)}")
        if self.num_classes < 1 or self.num_classes > 255:
            raise ValueError("num_classes must be in 1..255 (labels are uint8), "
                             f"got {self.num_classes}")
        ws = self.widths
        if not ws or list(ws) != sorted(set(ws)) or ws[0] <= 0.0 or ws[-1] != 1.0:
            raise ValueError("widths must be ascending, unique, in (0, 1] and end at 1.0; "
                             f"got {ws}")
        if self.channel_divisor < 1:
            raise ValueError(f"channel_divisor must be >= 1, got {self.channel_divisor}")
        if self.output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {self.output_stride}")
        if self.head_channels < 8:
            raise ValueError(f"head_channels must be >= 8, got {self.head_channels}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(values["widths"])
        return cls(**values)
