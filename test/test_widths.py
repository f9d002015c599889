"""The one width rule (``slimseg_ros.widths``) and the layers that apply it."""

from __future__ import annotations

import pytest

from slimseg_ros.widths import (
    WIDTH_TOLERANCE, format_widths, match_width, parse_widths, width_index, width_key)

WIDTHS = (0.25, 0.5, 0.75, 1.0)
REFUSAL = r"^width 0.3 is not one of the model's widths \(0.25, 0.5, 0.75, 1\)$"


def test_match_within_the_one_tolerance() -> None:
    assert match_width(0.75, WIDTHS) == 0.75
    assert match_width(0.5000000001, WIDTHS) == 0.5  # a double that went through YAML
    assert match_width(1, WIDTHS) == 1.0 and isinstance(match_width(1, WIDTHS), float)
    assert width_index(0.25 + WIDTH_TOLERANCE / 2, WIDTHS) == 0
    with pytest.raises(ValueError, match=REFUSAL):
        match_width(0.3, WIDTHS)
    with pytest.raises(ValueError, match="width 2 is not one of the model's widths"):
        match_width(2.0, WIDTHS)
    with pytest.raises(ValueError, match="not a number; the model's widths are 0.25"):
        match_width("wide", WIDTHS)


def test_keys_and_lists() -> None:
    assert [width_key(w) for w in (0.25, 1, 0.5)] == ["0.25", "1.0", "0.5"]
    assert format_widths(WIDTHS) == "0.25, 0.5, 0.75, 1"


def test_parse_all_lists_and_sequences() -> None:
    assert parse_widths("all", WIDTHS) == WIDTHS
    assert parse_widths(" ALL ", WIDTHS) == WIDTHS
    assert parse_widths(None, WIDTHS) == WIDTHS
    assert parse_widths("1.0,0.25,1", WIDTHS) == (1.0, 0.25)  # repeats dropped, order kept
    assert parse_widths([0.5], WIDTHS) == (0.5,)
    with pytest.raises(ValueError, match=REFUSAL):
        parse_widths("0.3", WIDTHS)
    with pytest.raises(ValueError, match="'all' or numbers"):
        parse_widths("half", WIDTHS)
    with pytest.raises(ValueError, match="no widths given"):
        parse_widths(",", WIDTHS)


def test_every_layer_refuses_with_the_same_sentence() -> None:
    from slimseg_ros.control import ControllerConfig, PointController, width_points
    from slimseg_ros.model import ModelConfig, SlimSegNet, build_static

    model = SlimSegNet(ModelConfig())
    controller = PointController(width_points(WIDTHS), {(w, (1, 1)): 0.01 for w in WIDTHS},
                                 ControllerConfig())
    for refuse in (model.set_width, model.width_index, controller.pin,
                   lambda w: build_static(model.config, w)):
        with pytest.raises(ValueError, match=REFUSAL):
            refuse(0.3)
    model.set_width(0.5000000001)
    assert model.width == 0.5
