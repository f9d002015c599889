"""The one width rule: a requested width matches one of the model's within one tolerance.

Every layer checks widths with these functions (the model's ``set_width``, the engine, the
controller, the node's ``width`` parameter, ``--widths`` on the command line, export, offline
evaluation), so one request is accepted or refused the same way everywhere, with one message.
Pure Python: the controller imports it and must stay free of torch and numpy, which is why it
lives at the package's top level rather than under ``model/`` (whose ``__init__`` loads torch).
"""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["WIDTH_TOLERANCE", "format_widths", "match_width", "parse_widths", "width_index",
           "width_key"]

WIDTH_TOLERANCE = 1e-6
"""Widths that went through ROS doubles, YAML or JSON compare equal within this."""


def format_widths(widths: Iterable[float]) -> str:
    """``0.25, 0.5, 0.75, 1``: how widths are listed in every message."""
    return ", ".join(f"{float(w):g}" for w in widths)


def width_key(width: float) -> str:
    """The key of a width in every JSON document: ``0.25 -> "0.25"``, ``1 -> "1.0"``."""
    return str(float(width))


def width_index(value: float, widths: Sequence[float]) -> int:
    """Index of the model width equal to ``value``.

    Raises:
        ValueError: ``value`` is none of ``widths``; the message lists the valid ones.
    """
    try:
        wanted = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"width {value!r} is not a number; the model's widths are "
                         f"{format_widths(widths)}") from None
    for i, w in enumerate(widths):
        if abs(float(w) - wanted) <= WIDTH_TOLERANCE:
            return i
    raise ValueError(f"width {wanted:g} is not one of the model's widths "
                     f"({format_widths(widths)})")


def match_width(value: float, widths: Iterable[float]) -> float:
    """The model width equal to ``value`` (ValueError listing the valid widths otherwise)."""
    widths = tuple(widths)
    return float(widths[width_index(value, widths)])


def parse_widths(spec: str | Sequence[float] | None, available: Sequence[float]
                 ) -> tuple[float, ...]:
    """``None`` or ``"all"``: every available width; ``"0.25,1.0"`` or a sequence: those.

    Each requested width is matched to one of ``available`` (the model's values are returned,
    in the order asked, repeats dropped).

    Raises:
        ValueError: text that is not numbers, an empty list, or a width the model lacks.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return tuple(float(w) for w in available)
    if isinstance(spec, str):
        try:
            wanted = [float(t) for t in spec.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"widths must be 'all' or numbers like 0.25,1.0, "
                             f"got {spec!r}") from None
    else:
        wanted = [float(w) for w in spec]
    if not wanted:
        raise ValueError("no widths given; use 'all' or a list like 0.25,1.0")
    chosen = [match_width(w, available) for w in wanted]
    return tuple(dict.fromkeys(chosen))
