"""Limits on the width an operator or the controller may choose: [min_width, max_width].

Used by the controller and by the node, which validates parameter sets before a controller
exists (while its engines are still being built).
"""

from __future__ import annotations

from collections.abc import Iterable

from slimseg_ros.control.config import ControllerConfig
from slimseg_ros.widths import WIDTH_TOLERANCE as _TOL
from slimseg_ros.widths import format_widths, match_width

__all__ = ["check_config", "check_pin", "width_bounds"]


def width_bounds(widths: tuple[float, ...], config: ControllerConfig) -> tuple[float, float]:
    """The narrowest and widest model widths within [min_width, max_width]."""
    lo = min(w for w in widths if w >= config.min_width - _TOL)
    hi = max(w for w in widths if w <= config.max_width + _TOL)
    return lo, hi


def check_config(widths: Iterable[float], config: ControllerConfig) -> None:
    """Raise ``ValueError`` unless a model width lies in [min_width, max_width] of ``config``.

    What the controller's ``set_config`` checks, usable before a controller exists (the
    node validates parameter sets while its engines are still being built).
    """
    if not isinstance(config, ControllerConfig):
        raise TypeError(f"config must be a ControllerConfig, got {type(config).__name__}")
    widths = tuple(widths)
    if not any(config.min_width - _TOL <= w <= config.max_width + _TOL for w in widths):
        raise ValueError(
            f"no model width lies in [min_width, max_width] = [{config.min_width:g}, "
            f"{config.max_width:g}]; the model's widths are {format_widths(sorted(widths))}")


def check_pin(width: float, widths: Iterable[float], config: ControllerConfig) -> float:
    """The model width an operator may pin for ``width``: one of ``widths`` and within
    [min_width, max_width] (``max_width`` means never wider, pins included).

    Raises:
        ValueError: not a model width (the message lists them), or outside the limits.
    """
    widths = tuple(sorted(widths))
    w = match_width(width, widths)
    lo, hi = width_bounds(widths, config)
    if not lo <= w <= hi:
        raise ValueError(
            f"width {w:g} is outside [min_width, max_width] = [{config.min_width:g}, "
            f"{config.max_width:g}]; change min_width/max_width first, or pin one of "
            f"{format_widths(v for v in widths if lo <= v <= hi)}")
    return w
