"""The one size rule: ``HxW`` text and (H, W) pairs, read and written the same everywhere."""

from __future__ import annotations

import pytest

from slimseg_ros.sizes import (
    MIN_INPUT_SIDE, check_size, format_size, format_sizes, parse_size, parse_sizes)


@pytest.mark.parametrize("size", [(360, 480), (1, 1), (1024, 2048), (32, 48)])
def test_format_and_parse_round_trip(size) -> None:
    assert parse_size(format_size(size)) == size
    assert parse_sizes(format_sizes([size, (size[1], size[0] + 1)])) == [
        size, (size[1], size[0] + 1)]


def test_text_is_height_first_and_forgiving_of_case_and_spaces() -> None:
    assert parse_size(" 360X480 ") == (360, 480)
    assert format_size([360.0, 480.0]) == "360x480"
    assert format_sizes([(360, 480), (270, 360)]) == "360x480, 270x360"


@pytest.mark.parametrize("text", ["", "360", "360x", "x480", "360x480x3", "360,480", "axb",
                                  "3.5x480"])
def test_malformed_text_is_one_line_error_with_an_example(text) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value) == f"size must be HxW, e.g. 360x480, got {text!r}"


@pytest.mark.parametrize("text", ["0x480", "360x0", "-1x480"])
def test_zero_and_negative_sides_are_refused(text) -> None:
    with pytest.raises(ValueError, match="at least 1x1"):
        parse_size(text)


def test_min_side_refuses_network_inputs_too_small_for_the_encoder() -> None:
    assert parse_size("32x32", MIN_INPUT_SIDE) == (32, 32)
    with pytest.raises(ValueError, match=r"at least 32x32, got '16x480'"):
        parse_size("16x480", MIN_INPUT_SIDE)
    assert parse_size("16x480") == (16, 480)  # a camera may be that small


def test_lists_parse_from_text_or_pairs_in_order() -> None:
    assert parse_sizes("360x480, 270x360,") == [(360, 480), (270, 360)]
    assert parse_sizes([[360, 480], (180, 240)]) == [(360, 480), (180, 240)]


@pytest.mark.parametrize("spec, message", [
    ("", "no size given"), ([], "no size given"), ("360x", "HxW"),
    ("16x16", "at least 32x32"), ([[64, 96], [16, 32]], "at least 32x32"),
    ([[64, 96, 3]], r"each size must be \[H, W\]"),
    ("64x64,64x64", "size 64x64 is given twice"), ([[64, 64], (64, 64)], "given twice")])
def test_bad_lists_are_one_line_errors(spec, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_sizes(spec, MIN_INPUT_SIDE)
    assert "\n" not in str(info.value)


def test_numeric_sizes_are_checked_naming_what_they_are() -> None:
    assert check_size([360, 480]) == (360, 480)
    assert check_size((64.0, 96.0), MIN_INPUT_SIDE) == (64, 96)
    for bad in ([16, 96], [64], [64, 96, 3], "64x96"):
        with pytest.raises(ValueError, match=r"input_size must be \[H, W\] with both >= 32"):
            check_size(bad, MIN_INPUT_SIDE, "input_size")
    with pytest.raises(ValueError, match=">= 1"):
        check_size([0, 96])
