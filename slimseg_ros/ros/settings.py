"""The node's parameter values, checked by one function at start-up and on every set.

:func:`validate` is the node's one check of its values beyond rclpy's descriptors (types,
ranges, read-only): the plain node calls it at start, the managed node at ``configure``, and
both in their on-set-parameters callback, so a value is refused in the same words wherever it
comes from. Rules about one value (choices, the device) live in the parameter table
(:mod:`.params`); the rules that join values (input sizes, controller limits, a pinned width or
size against the model) are here. rclpy-free.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..control import ControllerConfig, check_config, check_pin
from ..runtime import PointEngine, model_metadata
from . import params as P

__all__ = ["Checked", "Settings", "settle", "start_up_refusal", "validate"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The start-up parameters, checked, and the checkpoint's metadata."""

    model_path: Path | None
    """The checkpoint file (None: the engine was given, tests and benchmarks)."""
    meta: Any
    """Its :class:`~slimseg_ros.model.checkpoint.CheckpointMeta`."""
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int] | None
    cache_dir: str | None
    input_sizes: list[tuple[int, int]] | None = None
    """The operating points' sizes, primary first (None: ``input_size`` alone)."""
    latency_table: str | None = None
    """A device latency table file to seed the controller (None: the start-up profile)."""

    @property
    def widths(self) -> tuple[float, ...]:
        return tuple(sorted(float(w) for w in self.meta.widths))

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The operating points' input sizes, primary first."""
        return self.input_sizes or [self.input_size or tuple(self.meta.input_size)]


@dataclasses.dataclass(frozen=True)
class Checked:
    """What :func:`validate` found the values to mean."""

    config: ControllerConfig
    """The controller's limits with the values applied."""
    input_size: tuple[int, int] | None = None
    """Checked at start-up, or when ``input_size`` or ``input_sizes`` is set (else None)."""
    input_sizes: list[tuple[int, int]] | None = None
    """Likewise; primary size first (None also for [0, 0]: ``input_size`` alone)."""
    width_pin: float | None = None
    """The model width the values pin (None: they pin none, or the widths are not known)."""
    size_pin: tuple[int, int] | None = None
    """The size a set ``resolution`` pins (None: none, or [0, 0], which releases the pin)."""


def validate(values: Mapping[str, Any], settings: Settings | None,
             current: Mapping[str, Any] | None = None) -> Checked:
    """Check parameter values; ValueError with one line naming the first problem.

    Args:
        values: at start-up every node parameter's value; in the on-set callback the values
            being set.
        settings: the model the values must suit (widths, sizes); None while none is known
            (before the checkpoint is read, or unconfigured: the next configure checks).
        current: the values in place (in the on-set callback; None at start-up). Values in
            place passed before, so only the values set are checked one by one.

    A width pins when it is set, or at start-up when ``adaptive`` is false. ``resolution`` is
    checked here only when set; at start-up the engines' own sizes check it when adopted.
    """
    start_up = current is None
    merged = {**(current or {}), **values}
    for s in P.NODE_PARAMETERS:
        if s.name in values:
            P.check_value(s, values[s.name])
    input_size = input_sizes = None
    if start_up or "input_size" in values or "input_sizes" in values:
        input_size = P.check_input_size(merged["input_size"])
        input_sizes = P.check_input_sizes(merged["input_sizes"], input_size)
    # The values set change the limits in place (which a set naming others leaves alone).
    config = P.controller_config(values, None if current is None else P.controller_config(current))
    width_pin = size_pin = None
    if settings is not None:
        check_config(settings.widths, config)
        if ("width" in values) if not start_up else not merged["adaptive"]:
            width_pin = check_pin(merged["width"], settings.widths, config)
    if not start_up and "resolution" in values:
        size_pin = P.check_resolution(values["resolution"],
                                      settings.sizes if settings is not None else None)
    return Checked(config, input_size, input_sizes, width_pin, size_pin)


def settle(values: Mapping[str, Any], given: Any = None) -> Settings:
    """The start-up values, checked, with the checkpoint's header (read in milliseconds: no
    engine is built).

    Args:
        values: every node parameter's value.
        given: an engine handed to the node (tests, benchmarks): its metadata and sizes stand
            for the checkpoint's.

    Raises:
        ValueError: one line: what is wrong and what is allowed, or why the model is unreadable.
    """
    checked = validate(values, None)  # what needs no model: before reading one
    input_sizes = checked.input_sizes
    if given is not None:
        path, meta = None, given.meta
        if isinstance(given, PointEngine):  # its sizes are the points' sizes
            input_sizes = list(given.sizes)
    else:
        try:
            path, meta = model_metadata(values["model_path"] or None)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load the model: {exc}") from None
    settings = Settings(path, meta, values["backend"], values["device"], values["precision"],
                        checked.input_size, values["engine_cache_dir"] or None, input_sizes,
                        values["latency_table"] or None)
    validate(values, settings)  # and against the model's widths
    return settings


def start_up_refusal(names: Iterable[str], unconfigured: bool, node_fqn: str) -> str | None:
    """Why a set of these parameters is refused for being chosen at start or read from the
    checkpoint (None: it is not). Start-up parameters change only while the managed node is
    unconfigured (the plain node's are read-only, rclpy refuses them first)."""
    names = [n for n in names if n in P.STARTUP_PARAMETERS]
    fixed = [n for n in names if P.spec(n) in P.CHECKPOINT_PARAMETERS]
    if fixed:
        return f"{fixed[0]} comes from the checkpoint (model_path) and cannot be set"
    if names and not unconfigured:
        return (f"{names[0]} can change only while the node is unconfigured: "
                f"`ros2 lifecycle set {node_fqn} cleanup` first; the next configure loads it")
    return None
