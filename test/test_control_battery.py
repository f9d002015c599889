"""Battery readings: range checks, charging, and threshold levels with hysteresis."""

import math

import pytest

from slimseg_ros.control.battery import (
    POWER_SUPPLY_STATUS_CHARGING, POWER_SUPPLY_STATUS_DISCHARGING, POWER_SUPPLY_STATUS_FULL,
    POWER_SUPPLY_STATUS_UNKNOWN, battery_level, check_reading)

T = (0.5, 0.3, 0.15)


@pytest.mark.parametrize("p, level", [
    (0.9, 0), (0.5, 0), (0.4999, 1), (0.3, 1), (0.29, 2), (0.15, 2), (0.1, 3), (0.0, 3)])
def test_level_counts_the_thresholds_below(p, level):
    assert battery_level(p, T, 0.0, previous=0) == level


def test_hysteresis_holds_a_level_until_clearly_above_the_threshold():
    level = battery_level(0.29, T, 0.03, previous=0)
    assert level == 2
    for p in (0.30, 0.31, 0.3299):  # back above 0.3, but not by the hysteresis
        level = battery_level(p, T, 0.03, previous=level)
        assert level == 2
    assert battery_level(0.33, T, 0.03, previous=level) == 1


def test_hysteresis_never_delays_a_drop():
    assert battery_level(0.14, T, 0.03, previous=1) == 3


def test_a_jump_up_releases_every_cleared_threshold():
    assert battery_level(0.8, T, 0.03, previous=3) == 0
    assert battery_level(0.52, T, 0.03, previous=3) == 1  # 0.52 < 0.5 + 0.03


def test_valid_reading():
    reading, warning = check_reading(5.0, 0.42, POWER_SUPPLY_STATUS_DISCHARGING)
    assert warning is None
    assert (reading.stamp, reading.percentage, reading.on_power) == (5.0, 0.42, False)


def test_nan_means_not_measured_and_is_skipped_quietly():
    assert check_reading(0.0, math.nan, POWER_SUPPLY_STATUS_DISCHARGING) == (None, None)


def test_nan_while_charging_still_says_charging():
    reading, warning = check_reading(0.0, math.nan, POWER_SUPPLY_STATUS_CHARGING)
    assert warning is None and reading.on_power and reading.percentage is None


def test_zero_to_hundred_driver_is_named_not_guessed():
    reading, warning = check_reading(0.0, 57.0, POWER_SUPPLY_STATUS_DISCHARGING)
    assert reading is None
    assert "57" in warning and "fraction in [0, 1]" in warning and "0..100" in warning


@pytest.mark.parametrize("p", [-0.1, 250.0, math.inf])
def test_other_out_of_range_values_are_rejected(p):
    reading, warning = check_reading(0.0, p, POWER_SUPPLY_STATUS_UNKNOWN)
    assert reading is None and "ignored" in warning and "0..100" not in warning


def test_full_counts_as_on_power():
    reading, _ = check_reading(0.0, 1.0, POWER_SUPPLY_STATUS_FULL)
    assert reading.on_power
