"""settings.validate: the one check of parameter values, at start-up and on every set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from slimseg_ros.ros import params as P  # noqa: E402
from slimseg_ros.ros.frames import FrameOptions  # noqa: E402
from slimseg_ros.ros.settings import Settings, start_up_refusal, validate  # noqa: E402

DEFAULTS = {s.name: s.default for s in P.NODE_PARAMETERS}


def _model(widths=(0.25, 0.5, 1.0), sizes=None) -> Settings:
    meta = SimpleNamespace(widths=list(widths), input_size=[64, 96], class_names=["a", "b"])
    return Settings(None, meta, "torch", "cpu", "fp32", None, None, sizes)


@pytest.mark.parametrize("name, value, words", [
    ("precision", "int8", "precision must be one of fp32, fp16; got 'int8'"),
    ("input_transport", "theora", "input_transport must be one of raw, compressed"),
    ("input_reliability", "sometimes", "input_reliability must be one of auto, best_effort"),
    ("backend", "cudnn", "backend must be one of auto, torch"),
    ("device", "gpu", "device must be auto, cpu, cuda or cuda:N; got 'gpu'"),
    ("input_size", [10, 480], "input_size must be [H, W] with both >= 32"),
    ("input_sizes", [64, 96, 64], "input_sizes must be pairs"),
    ("min_width", 0.9, "min_width"),  # min_width above max_width: ControllerConfig's words
])
def test_a_value_is_refused_in_the_same_words_at_start_up_and_on_set(name, value, words) -> None:
    values = {**DEFAULTS, name: value}
    if name == "min_width":
        values["max_width"] = 0.5
    with pytest.raises(ValueError) as at_start:
        validate(values, None)
    with pytest.raises(ValueError) as on_set:
        validate({k: v for k, v in values.items() if DEFAULTS[k] != v}, None, DEFAULTS)
    assert str(at_start.value) == str(on_set.value)
    assert words in str(at_start.value)


def test_on_set_only_the_values_set_are_checked_one_by_one() -> None:
    # A managed node may hold an unusable start-up value until configure says so.
    current = {**DEFAULTS, "backend": "cudnn"}
    assert validate({"target_fps": 20.0}, None, current).config.target_fps == 20.0


def test_the_model_s_widths_decide_pins_and_limits() -> None:
    model = _model()
    assert validate(DEFAULTS, model).width_pin is None          # adaptive: nothing pinned
    pinned = {**DEFAULTS, "adaptive": False, "width": 0.5}
    assert validate(pinned, model).width_pin == 0.5
    with pytest.raises(ValueError, match="not one of the model's widths"):
        validate({**pinned, "width": 0.3}, model)
    assert validate({"width": 0.5}, model, DEFAULTS).width_pin == 0.5   # setting it pins it
    assert validate({"width": 0.3}, None, DEFAULTS).width_pin is None  # no model: no check
    with pytest.raises(ValueError, match="no model width lies in"):
        validate({"min_width": 0.6, "max_width": 0.9}, model, DEFAULTS)


def test_a_resolution_is_checked_when_set_against_the_model_s_sizes() -> None:
    model = _model(sizes=[(64, 96), (32, 48)])
    assert validate({"resolution": [32, 48]}, model, DEFAULTS).size_pin == (32, 48)
    assert validate({"resolution": [0, 0]}, model, DEFAULTS).size_pin is None
    with pytest.raises(ValueError, match="resolution 40x40 is not one of the input sizes"):
        validate({"resolution": [40, 40]}, model, DEFAULTS)
    # at start-up the engines' sizes check it when they are adopted
    assert validate({**DEFAULTS, "resolution": [40, 40]}, model).size_pin is None


def test_input_size_and_input_sizes_are_checked_together() -> None:
    current = {**DEFAULTS, "input_sizes": [64, 96, 32, 48]}
    checked = validate({"input_size": [32, 48]}, None, current)
    assert checked.input_sizes == [(32, 48), (64, 96)]   # the primary size first
    with pytest.raises(ValueError, match="input_size 40x40 is not one of input_sizes"):
        validate({"input_size": [40, 40]}, None, current)


def test_start_up_parameters_change_only_while_unconfigured() -> None:
    assert start_up_refusal(["target_fps"], False, "/slimseg") is None
    assert start_up_refusal(["model_path"], True, "/slimseg") is None
    said = start_up_refusal(["target_fps", "model_path"], False, "/ns/slimseg")
    assert said is not None and said.startswith("model_path can change only while")
    assert "ros2 lifecycle set /ns/slimseg cleanup" in said
    said = start_up_refusal(["widths"], True, "/slimseg")
    assert said == "widths comes from the checkpoint (model_path) and cannot be set"


def test_choices_in_the_table_are_what_the_descriptors_say() -> None:
    for s in P.NODE_PARAMETERS:
        choices = P.choices_of(s)
        if choices and not s.constraints:
            described = P.descriptor(s).additional_constraints
            assert all(c in described for c in choices), s.name
    assert P.descriptor(P.spec("input_reliability")).additional_constraints == (
        "auto, best_effort or reliable")


def test_frame_options_follow_a_parameter_set() -> None:
    options = FrameOptions.of(DEFAULTS)
    assert options == FrameOptions(P.DEFAULT_MAX_IMAGE_PIXELS, True, True, 0.5)
    changed = options.updated({"overlay_alpha": 1, "publish_color": False, "target_fps": 5.0})
    assert changed == FrameOptions(P.DEFAULT_MAX_IMAGE_PIXELS, False, True, 1.0)
