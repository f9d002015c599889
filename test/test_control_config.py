"""ControllerConfig: defaults, conversions, and rejection messages that say what is allowed."""

import array
import ast
import dataclasses
import re
from pathlib import Path

import pytest

from slimseg_ros.control import ControllerConfig


def _documented_defaults() -> dict[str, object]:
    """name -> default of each row of the parameter table in docs/node.md."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "node.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]*)` \|", doc, re.MULTILINE)
    return {name: ast.literal_eval(text) for name, text in rows
            if re.fullmatch(r"[-\d.\[\], ]+", text)}


def test_defaults_are_the_documented_node_parameter_defaults():
    # users rely on the defaults through the node's parameter table; a field with a parameter
    # must default to what the table says
    c = ControllerConfig()
    documented = _documented_defaults()
    fields = [f.name for f in dataclasses.fields(c) if f.name in documented]
    assert {"target_fps", "battery_thresholds", "battery_widths", "overrun_frames"} <= set(fields)
    for name in fields:
        value = getattr(c, name)
        assert (list(value) if isinstance(value, tuple) else value) == documented[name], name


def test_defaults_are_valid():
    c = ControllerConfig()
    assert len(c.battery_thresholds) == len(c.battery_widths)
    assert c.overrun_frames >= 1 and c.min_dwell_s > 0 and 0 < c.margin < 1


def test_ros_parameter_types_are_normalised():
    # rclpy hands double arrays over as array.array('d') and YAML may give ints for doubles.
    c = ControllerConfig(target_fps=30, battery_thresholds=array.array("d", [0.4, 0.2]),
                         battery_widths=[1, 0.5])
    assert c.target_fps == 30.0 and isinstance(c.target_fps, float)
    assert c.battery_thresholds == (0.4, 0.2)
    assert c.battery_widths == (1.0, 0.5)


def test_frozen_and_replace_checks_again():
    c = ControllerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.target_fps = 5.0
    assert c.replace(target_fps=5.0).target_fps == 5.0
    with pytest.raises(ValueError, match=r"target_fps must be > 0, got -1"):
        c.replace(target_fps=-1.0)


@pytest.mark.parametrize("changes, message", [
    ({"target_fps": 0.0}, r"target_fps must be > 0, got 0"),
    ({"target_fps": float("nan")}, r"target_fps must be > 0, got nan"),
    ({"min_width": -0.1}, r"min_width must be in \[0, 1\], got -0.1"),
    ({"max_width": 0.0}, r"max_width must be in \(0, 1\], got 0"),
    ({"min_width": 0.75, "max_width": 0.5},
     r"min_width \(0.75\) must not exceed max_width \(0.5\)"),
    ({"battery_thresholds": (0.2, 0.5, 0.1)},
     r"battery_thresholds must be strictly descending values in \(0, 1\), got \[0.2, 0.5, 0.1\]"),
    ({"battery_thresholds": (0.5, 0.5, 0.1)}, r"strictly descending"),
    ({"battery_thresholds": (50.0, 30.0, 15.0)}, r"strictly descending values in \(0, 1\)"),
    ({"battery_widths": (0.25, 0.5, 0.75)},
     r"battery_widths must be values in \(0, 1\] that do not increase, got \[0.25, 0.5, 0.75\]"),
    ({"battery_widths": (0.5, 0.25)},
     r"one width per threshold, got 3 thresholds \[0.5, 0.3, 0.15\] and 2 widths \[0.5, 0.25\]"),
    ({"battery_hysteresis": 0.5}, r"battery_hysteresis must be in \[0, 0.5\), got 0.5"),
    ({"battery_timeout_s": 0.0}, r"battery_timeout_s must be > 0"),
    ({"min_dwell_s": -1.0}, r"min_dwell_s must be >= 0, got -1"),
    ({"overrun_frames": 0}, r"overrun_frames must be an integer >= 1, got 0"),
    ({"overrun_frames": 2.5}, r"overrun_frames must be an integer >= 1, got 2.5"),
    ({"overrun_frames": True}, r"overrun_frames must be an integer >= 1, got True"),
    ({"margin": 1.0}, r"margin must be in \[0, 1\), got 1"),
    ({"ema_alpha": 0.0}, r"ema_alpha must be in \(0, 1\], got 0"),
    ({"latency_memory_s": -5.0}, r"latency_memory_s must be > 0"),
    ({"target_fps": "fast"}, r"target_fps must be a number, got 'fast'"),
    ({"battery_widths": ("a",)}, r"battery_widths must be a list of numbers"),
])
def test_bad_values_are_rejected_with_what_is_allowed(changes, message):
    with pytest.raises(ValueError, match=message):
        ControllerConfig(**changes)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as info:
        ControllerConfig(target_fps=0.0, margin=2.0)
    assert "target_fps" in str(info.value) and "margin" in str(info.value)


def test_infinite_timeouts_mean_never():
    c = ControllerConfig(battery_timeout_s=float("inf"), latency_memory_s=float("inf"))
    assert c.battery_timeout_s == float("inf")
