"""The node's parameters: names, defaults, descriptors, and the checks that go beyond ranges.

One table (:data:`NODE_PARAMETERS`) drives the declarations, the YAML in ``config/`` (a test keeps
them equal) and ``docs/node.md``. Defaults of the controller's parameters come from
:class:`~slimseg_ros.control.ControllerConfig`, so there is one source of truth. rclpy checks
types, ranges and read-only flags before the node's callback runs; what a descriptor cannot say
is checked by :func:`~slimseg_ros.ros.settings.validate`, at start and on every set alike: the
rules of one value (one of a few strings, a device name) from this table, the rules that join
values (a width the model has, thresholds that descend) there.

Every ROS user writes ``30`` for a double: :func:`coerce` turns integers (and lists of them) into
the doubles a parameter is declared as, for parameter files, ``-p`` and ``ros2 param set``
alike, and words the refusal of a value of another type so that a user can act on it.

The managed node (``slimseg_lifecycle_node``) declares the same table: its start-up parameters
(read-only in the plain node) may change while it is unconfigured, so a ``configure`` after a
``cleanup`` can load another model; ``widths`` and ``class_names`` follow the model it loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType)

from ..control import ControllerConfig
from ..sizes import MIN_INPUT_SIDE, Size, format_size, format_sizes
from .qos import RELIABILITY_MODES

__all__ = [
    "ParamSpec", "NODE_PARAMETERS", "CHECKPOINT_PARAMETERS", "CONTROLLER_PARAMETERS",
    "STARTUP_PARAMETERS", "ALL_NAMES",
    "INPUT_TRANSPORTS", "PRECISIONS", "DEFAULT_MAX_IMAGE_PIXELS", "descriptor", "spec",
    "controller_config", "check_choice", "check_device", "check_input_size", "check_input_sizes",
    "check_resolution", "check_value", "choices_of", "backend_choices",
    "coerce", "type_words", "unknown_parameter", "MANAGED_CONSTRAINT",
]

MANAGED_CONSTRAINT = ("set while the node is unconfigured; the next configure applies it "
                      "(ros2 lifecycle set <node> cleanup first)")
"""What the managed node's descriptors say of the start-up parameters."""

INPUT_TRANSPORTS: tuple[str, ...] = ("raw", "compressed")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
DEFAULT_MAX_IMAGE_PIXELS = 3840 * 2160
_DEFAULTS = ControllerConfig()


def backend_choices() -> tuple[str, ...]:
    """``auto`` and every backend the runtime registers (read at call time: backends grow)."""
    from ..runtime.backends import BACKEND_NAMES

    return ("auto", *BACKEND_NAMES)


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(value: str) -> str:
    """``value`` if it looks like a device the runtime takes; else ValueError."""
    if not _DEVICE.match(value):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default (which fixes its type) and how it is described."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    constraints: str = ""
    """Human-readable rules beyond the range (shown by ``ros2 param describe``); for a
    parameter with ``choices`` and no text of its own, they are listed."""
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    """The strings it takes; a callable is asked each time (backends are registered late)."""
    check: Callable[[Any], Any] | None = None
    """Raises ValueError (one line) for a value it cannot take, beyond ``choices``."""


NODE_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "SlimSeg checkpoint (.safetensors); empty = the shipped default "
              "model (share/slimseg_ros/models/slimseg_camvid.safetensors)", read_only=True),
    ParamSpec("backend", "auto", "inference backend; auto picks the fastest available and logs "
              "why", read_only=True, constraints="auto or a backend of slimseg_ros.runtime",
              choices=backend_choices),
    ParamSpec("device", "auto", "auto | cpu | cuda | cuda:N", read_only=True,
              constraints="auto, cpu, cuda or cuda:N", check=check_device),
    ParamSpec("precision", "fp32", "fp32 | fp16 (fp16 needs a GPU)", read_only=True,
              choices=PRECISIONS),
    ParamSpec("input_size", [0, 0], "[H, W] the network runs at; [0, 0] = the checkpoint's. "
              "Images of any size are accepted; labels always come at the image's size",
              read_only=True, constraints=f"[0, 0] or two integers >= {MIN_INPUT_SIDE}"),
    ParamSpec("input_sizes", [0, 0], "network input sizes of the operating points, as pairs "
              "[H1, W1, H2, W2, ...] (ROS parameters cannot nest lists); one engine per width "
              "and size. [0, 0] = input_size alone (one size: behaviour as before). The first "
              "size is the primary one", read_only=True,
              constraints=f"[0, 0] or an even count of integers >= {MIN_INPUT_SIDE}, no size "
                          "twice; input_size, if set, must be one of them"),
    ParamSpec("latency_table", "", "device latency table (slimseg profile --out) that seeds the "
              "controller's per-point latency predictions; empty = profile at start. A table "
              "for another device, backend, precision, thread count or library version is "
              "refused with a warning naming the mismatch (the start-up profile is used)",
              read_only=True),
    ParamSpec("engine_cache_dir", "", "where compiled per-width engines are kept; empty = the "
              "runtime's default cache directory", read_only=True),
    ParamSpec("width", 1.0, "the width in use. Setting it pins that width (adaptive becomes "
              "false); while adaptive the node keeps it equal to the width in use",
              float_range=(0.0, 1.0), constraints="one of the model's widths (see 'widths')"),
    ParamSpec("resolution", [0, 0], "the network input size in use, [H, W]. Setting it pins "
              "that size (the width then follows the budget unless pinned too); [0, 0] releases "
              "the size pin; while the size adapts the node keeps it equal to the size in use",
              constraints="[0, 0] or one of input_sizes"),
    ParamSpec("adaptive", True, "choose the width from battery and frame-rate feedback; true "
              "resumes adapting after a pin"),
    ParamSpec("target_fps", _DEFAULTS.target_fps, "frame rate to keep up with; a slower camera "
              "lowers the budget to its own rate", float_range=(0.1, 1000.0)),
    ParamSpec("min_width", _DEFAULTS.min_width, "never run narrower than this (0 = no floor)",
              float_range=(0.0, 1.0), constraints="min_width <= max_width"),
    ParamSpec("max_width", _DEFAULTS.max_width, "never run wider than this",
              float_range=(0.0, 1.0), constraints="> 0; a model width must lie in "
              "[min_width, max_width]"),
    ParamSpec("battery_thresholds", list(_DEFAULTS.battery_thresholds), "battery fractions "
              "(0..1, strictly descending); below thresholds[i] the width is capped at "
              "battery_widths[i]", constraints="strictly descending values in (0, 1), one per "
              "battery width"),
    ParamSpec("battery_widths", list(_DEFAULTS.battery_widths), "width caps, one per battery "
              "threshold", constraints="values in (0, 1] that do not increase"),
    ParamSpec("battery_hysteresis", _DEFAULTS.battery_hysteresis, "a battery cap is lifted only "
              "once the battery is this far above its threshold", float_range=(0.0, 0.5),
              constraints="< 0.5"),
    ParamSpec("min_dwell_s", _DEFAULTS.min_dwell_s, "seconds of headroom before the width steps "
              "up (no flapping)", float_range=(0.0, 3600.0)),
    ParamSpec("overrun_frames", _DEFAULTS.overrun_frames, "consecutive frames over budget that "
              "step the width down", int_range=(1, 1000)),
    ParamSpec("agreement_period_s", 10.0, "every this many seconds, in idle time between "
              "frames only, also run the most accurate operating point on the frame just "
              "answered and publish how far the point in use agrees with it (mIoU of the two "
              "label maps) on ~/agreement and /diagnostics; a sustained drop is logged once as "
              "a likely camera or domain change. 0 = off", float_range=(0.0, 3600.0)),
    ParamSpec("publish_color", True, "publish labels_color (rgb8 palette) while it has "
              "subscribers"),
    ParamSpec("publish_overlay", True, "publish overlay (image blended with the palette) while "
              "it has subscribers"),
    ParamSpec("overlay_alpha", 0.5, "weight of the palette colour in overlay",
              float_range=(0.0, 1.0)),
    ParamSpec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "larger images are rejected and "
              "counted", int_range=(1, 1 << 30)),
    ParamSpec("input_transport", "raw", "raw: subscribe to image (sensor_msgs/Image); "
              "compressed: to image/compressed (sensor_msgs/CompressedImage)",
              choices=INPUT_TRANSPORTS),
    ParamSpec("input_reliability", "auto", "auto matches the publishers on the input topic "
              "(re-checked every second); best_effort | reliable force one",
              choices=RELIABILITY_MODES),
)
"""Declared before the model loads (their values choose the model and the engine)."""

CHECKPOINT_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("class_names", ["unknown"], "class of each label value, from the checkpoint",
              read_only=True),
    ParamSpec("widths", [1.0], "the widths this model runs at, from the checkpoint",
              read_only=True),
)
"""Declared after the model loads, from its checkpoint (YAML values are ignored)."""

STARTUP_PARAMETERS: tuple[str, ...] = tuple(
    s.name for s in NODE_PARAMETERS + CHECKPOINT_PARAMETERS if s.read_only)
"""Chosen at start (read-only in the plain node; the managed node takes them while unconfigured),
or read from the checkpoint."""

CONTROLLER_PARAMETERS: tuple[str, ...] = (
    "target_fps", "min_width", "max_width", "battery_thresholds", "battery_widths",
    "battery_hysteresis", "min_dwell_s", "overrun_frames",
)
"""Parameters that are fields of :class:`ControllerConfig` with the same name."""

_SPECS = {s.name: s for s in NODE_PARAMETERS + CHECKPOINT_PARAMETERS}
ALL_NAMES: tuple[str, ...] = tuple(_SPECS)
"""Every parameter the node has."""


def spec(name: str) -> ParamSpec:
    """The spec of parameter ``name`` (KeyError if the node has no such parameter)."""
    return _SPECS[name]


def descriptor(s: ParamSpec, managed: bool = False) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` rclpy checks and ``ros2 param describe`` shows.

    Args:
        managed: for the lifecycle node: start-up parameters are not read-only there (the node
            itself refuses them unless unconfigured), and the checkpoint's are set by the node.
    """
    constraints = s.constraints or _in_words(choices_of(s))
    if managed and s.read_only:
        constraints = "; ".join(c for c in (constraints, (
            "from the checkpoint, set by configure" if s in CHECKPOINT_PARAMETERS
            else MANAGED_CONSTRAINT)) if c)
    d = ParameterDescriptor(description=s.description, read_only=s.read_only and not managed,
                            additional_constraints=constraints)
    if s.float_range is not None:
        d.floating_point_range = [FloatingPointRange(
            from_value=float(s.float_range[0]), to_value=float(s.float_range[1]), step=0.0)]
    if s.int_range is not None:
        d.integer_range = [IntegerRange(
            from_value=int(s.int_range[0]), to_value=int(s.int_range[1]), step=1)]
    return d


def controller_config(values: Mapping[str, Any], base: ControllerConfig | None = None
                      ) -> ControllerConfig:
    """``base`` with the controller parameters in ``values`` applied (others are ignored).

    Raises:
        ValueError: the result is not a valid config; one line per problem, from
            :class:`ControllerConfig`.
    """
    changes = {k: v for k, v in values.items() if k in CONTROLLER_PARAMETERS}
    for key in ("battery_thresholds", "battery_widths"):
        if key in changes:
            changes[key] = tuple(changes[key])
    return (base or ControllerConfig()).replace(**changes)


def _in_words(choices: Sequence[str]) -> str:
    """``a, b or c`` (empty for no choices)."""
    return " or ".join(filter(None, (", ".join(choices[:-1]), *choices[-1:])))


def choices_of(s: ParamSpec) -> tuple[str, ...]:
    """The strings parameter ``s`` takes (empty: any)."""
    return s.choices() if callable(s.choices) else s.choices


def check_value(s: ParamSpec, value: Any) -> Any:
    """``value`` if it keeps the rules of ``s`` alone (``choices``, ``check``); else ValueError
    in one line. The rules that join values: :func:`~slimseg_ros.ros.settings.validate`."""
    choices = choices_of(s)
    if choices:
        check_choice(s.name, value, choices)
    if s.check is not None:
        s.check(value)
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; else ValueError naming them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_input_size(value: Sequence[int]) -> Size | None:
    """None for [0, 0] (the checkpoint's size), else (H, W); ValueError if neither."""
    size = tuple(int(v) for v in value)
    if size == (0, 0):
        return None
    if len(size) != 2 or min(size) < MIN_INPUT_SIDE:
        raise ValueError(f"input_size must be [H, W] with both >= {MIN_INPUT_SIDE}, or [0, 0] "
                         f"for the checkpoint's size; got {list(size)}")
    return size  # type: ignore[return-value]


def check_input_sizes(value: Sequence[int], input_size: Size | None) -> list[Size] | None:
    """The operating points' input sizes from the flat ``input_sizes`` list (None for [0, 0]:
    ``input_size`` alone); ValueError in one line otherwise.

    ``input_size`` (already checked), when set, must be one of them; it then comes first (the
    primary size, which single-size views such as ``slimseg bench`` report).
    """
    flat = [int(v) for v in value]
    if flat == [0, 0]:
        return None
    if len(flat) < 2 or len(flat) % 2:
        raise ValueError(f"input_sizes must be pairs [H1, W1, H2, W2, ...] (or [0, 0]); got "
                         f"{len(flat)} values {flat}")
    sizes = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    for size in sizes:
        if min(size) < MIN_INPUT_SIDE:
            raise ValueError(f"input_sizes: every H and W must be >= {MIN_INPUT_SIDE}; "
                             f"got {list(size)}")
        if sizes.count(size) > 1:
            raise ValueError(f"input_sizes: {format_size(size)} is given twice")
    if input_size is not None:
        if input_size not in sizes:
            raise ValueError(f"input_size {format_size(input_size)} is not one of "
                             f"input_sizes ({format_sizes(sizes)}); "
                             f"set input_size [0, 0] or add it")
        sizes.remove(input_size)
        sizes.insert(0, input_size)
    return sizes


def check_resolution(value: Sequence[int], sizes: Sequence[Size] | None) -> Size | None:
    """None for [0, 0] (no size pin), else (H, W), which must be one of ``sizes`` when they are
    known; ValueError in one line otherwise."""
    size = tuple(int(v) for v in value)
    if size == (0, 0):
        return None
    if len(size) != 2:
        raise ValueError(f"resolution must be [H, W] or [0, 0]; got {list(size)}")
    if sizes is not None and size not in [tuple(s) for s in sizes]:
        raise ValueError(f"resolution {format_size(size)} is not one of the input sizes "
                         f"({format_sizes(sizes)}); set input_sizes at "
                         "start, or [0, 0] to release the size")
    return size  # type: ignore[return-value]


def reliability_modes() -> tuple[str, ...]:
    """The values ``input_reliability`` takes."""
    return RELIABILITY_MODES


_TYPE_WORDS = {
    ParameterType.PARAMETER_BOOL: "a boolean (true or false)",
    ParameterType.PARAMETER_INTEGER: "an integer",
    ParameterType.PARAMETER_DOUBLE: "a number (double; 30 and 30.0 both work)",
    ParameterType.PARAMETER_STRING: "a string",
    ParameterType.PARAMETER_BYTE_ARRAY: "a list of bytes",
    ParameterType.PARAMETER_BOOL_ARRAY: "a list of booleans",
    ParameterType.PARAMETER_INTEGER_ARRAY: "a list of integers",
    ParameterType.PARAMETER_DOUBLE_ARRAY: "a list of numbers (doubles)",
    ParameterType.PARAMETER_STRING_ARRAY: "a list of strings",
    ParameterType.PARAMETER_NOT_SET: "no value",
}


def type_words(parameter_type: int) -> str:
    """A ``ParameterType`` in a user's words (``a number (double; ...)``, not ``3``)."""
    return _TYPE_WORDS.get(parameter_type, f"type {parameter_type}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def coerce(name: str, declared: int, given: int, value: Any) -> Any:
    """``value`` (of ``ParameterType`` ``given``) as parameter ``name`` declared ``declared``
    takes it: integers become doubles for a double, lists of integers doubles for a double
    list; a value of the declared type passes unchanged.

    Raises:
        ValueError: another type; the message says what the parameter takes and what came.
    """
    if given == declared or declared == ParameterType.PARAMETER_NOT_SET:
        return value
    if declared == ParameterType.PARAMETER_DOUBLE and given == ParameterType.PARAMETER_INTEGER:
        return float(value)
    if (declared == ParameterType.PARAMETER_DOUBLE_ARRAY
            and given == ParameterType.PARAMETER_INTEGER_ARRAY):
        return [float(v) for v in value]
    shown = list(value) if given in (ParameterType.PARAMETER_INTEGER_ARRAY,
                                     ParameterType.PARAMETER_DOUBLE_ARRAY,
                                     ParameterType.PARAMETER_BOOL_ARRAY) else value
    raise ValueError(f"{name} takes {type_words(declared)}; got {type_words(given)} {shown!r}")


def unknown_parameter(name: str, known: Iterable[str]) -> str:
    """What to tell a user who named a parameter the node does not have."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (f"the node has no parameter {name!r}{hint} (ros2 param list <node> lists them)")
