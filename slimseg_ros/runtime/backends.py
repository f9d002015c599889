"""Backend registry: how each backend turns the frozen widths into runners, and ``auto``'s choice."""

from __future__ import annotations

from typing import Callable

from ..model.checkpoint import CheckpointMeta
from ..model.slimseg import SlimSegNet
from .engine import Runner
from .torch_backend import build_torch_runners

__all__ = ["BACKEND_NAMES", "build_runners", "choose_backend"]

# name -> builder(model, meta, *, device, precision, cache_dir, upsample, model_path)
#         -> (runners, device actually used, notes)
Builder = Callable[..., "tuple[dict[float, Runner], str, list[str]]"]


def _torch(model: SlimSegNet, meta: CheckpointMeta, *, device: str, precision: str,
           cache_dir: object, upsample: str, model_path: object) -> tuple[dict[float, Runner], str, list[str]]:
    runners, used = build_torch_runners(model, meta, device, precision, upsample)
    return runners, used, []


BUILDERS: dict[str, Builder] = {"torch": _torch}
BACKEND_NAMES: tuple[str, ...] = tuple(BUILDERS)


def choose_backend(device: str, precision: str) -> tuple[str, str]:
    """The backend ``auto`` picks, with the reason it gives."""
    return "torch", "the only backend available"


def build_runners(name: str, model: SlimSegNet, meta: CheckpointMeta, **options: object
                  ) -> tuple[dict[float, Runner], str, list[str]]:
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BUILDERS)}") from None
    return builder(model, meta, **options)
