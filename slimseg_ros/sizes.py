"""The one size rule: sizes are ``(H, W)`` pairs, written ``HxW`` (height first, as arrays).

Every layer reads and shows sizes with these functions (the command line, the node's parameter
messages, diagnostics, JSON point keys, engine cache names), so ``360x480`` means the same size
everywhere and a bad one is refused with one message. Pure Python, like ``widths``: the
controller imports it and must stay free of torch and numpy.
"""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["MIN_INPUT_SIDE", "Size", "check_size", "format_size", "format_sizes",
           "parse_size", "parse_sizes"]

Size = tuple[int, int]
"""(H, W) in pixels."""

MIN_INPUT_SIDE = 32
"""Smallest side of a network input: the encoder downsamples by up to 32, so a smaller side
leaves it an empty feature map."""


def format_size(size: Sequence[int]) -> str:
    """(360, 480) -> ``360x480``."""
    return f"{int(size[0])}x{int(size[1])}"


def format_sizes(sizes: Iterable[Sequence[int]]) -> str:
    """``360x480, 270x360``: how a list of sizes reads in every message."""
    return ", ".join(format_size(s) for s in sizes)


def _at_least(size: Size, min_side: int, shown: str) -> Size:
    if min(size) < max(1, min_side):
        side = max(1, min_side)
        raise ValueError(f"size must be at least {side}x{side}, got {shown!r}")
    return size


def parse_size(text: str, min_side: int = 1) -> Size:
    """``360x480`` -> (360, 480).

    Raises:
        ValueError: (one line) text that is not ``HxW``, or a side below ``min_side`` (zero and
            negative sides are always refused).
    """
    try:
        h, w = (int(v) for v in str(text).lower().strip().split("x"))
    except ValueError:
        raise ValueError(f"size must be HxW, e.g. 360x480, got {text!r}") from None
    return _at_least((h, w), min_side, str(text))


def check_size(value: Sequence[int], min_side: int = 1, name: str = "size") -> Size:
    """A size given as numbers (``[H, W]`` from YAML, JSON or a checkpoint), checked.

    Raises:
        ValueError: not two integers, or a side below ``min_side`` (at least 1); the message
            names ``name``.
    """
    side = max(1, min_side)
    try:
        size = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < side:
        raise ValueError(f"{name} must be [H, W] with both >= {side}, "
                         f"got {list(size) if size else value!r}")
    return size  # type: ignore[return-value]


def parse_sizes(spec: str | Iterable[Sequence[int]], min_side: int = 1) -> list[Size]:
    """``360x480,270x360`` (or a list of [H, W]) -> distinct sizes in the given order.

    Raises:
        ValueError: empty, a malformed size, a side below ``min_side``, or a size given twice.
    """
    if isinstance(spec, str):
        items = [parse_size(t, min_side) for t in spec.split(",") if t.strip()]
    else:
        items = []
        for pair in spec:
            if len(pair) != 2:
                raise ValueError(f"each size must be [H, W], got {list(pair)}")
            size = (int(pair[0]), int(pair[1]))
            items.append(_at_least(size, min_side, format_size(size)))
    if not items:
        raise ValueError("no size given (expected e.g. 360x480,270x360)")
    seen: list[Size] = []
    for size in items:
        if size in seen:
            raise ValueError(f"size {format_size(size)} is given twice")
        seen.append(size)
    return seen
