"""Label-free accuracy at run time: when agreement is checked, and when a drop is reported."""

from __future__ import annotations

import numpy as np
import pytest

from slimseg_ros.control.agreement import AgreementMonitor
from slimseg_ros.eval.metrics import label_agreement


def test_checks_wait_for_the_period_and_for_idle_time_that_holds_the_reference_run() -> None:
    m = AgreementMonitor(period_s=5.0)
    assert not m.due(0.0, idle_s=0.010, reference_s=0.030)   # would delay the next frame
    assert m.due(0.0, idle_s=0.050, reference_s=0.030)
    m.record(0.0, "p", 0.9)
    assert not m.due(4.9, idle_s=1.0, reference_s=0.03)
    assert m.due(5.0, idle_s=1.0, reference_s=0.03)
    assert not AgreementMonitor(period_s=0.0).due(100.0, 1.0, 0.0)   # 0 = off


def test_a_sustained_drop_against_the_points_own_baseline_is_reported_once() -> None:
    m = AgreementMonitor(period_s=1.0, drop=0.15, sustain=3, baseline_checks=3)
    t = 0.0
    for value in (0.80, 0.82, 0.78):                          # baseline 0.80
        assert m.record(t, "0.25@180x240", value) is None
        t += 1
    assert m.baseline("0.25@180x240") == pytest.approx(0.80)
    assert m.record(t, "0.25@180x240", 0.60) is None            # one low check: noise
    assert m.record(t + 1, "0.25@180x240", 0.79) is None        # recovered
    said = [m.record(t + 2 + i, "0.25@180x240", 0.55) for i in range(6)]
    assert [s is not None for s in said] == [False, False, True, False, False, False]
    assert "slimseg recalibrate" in said[2] and "slimseg adapt" in said[2]
    assert m.record(t + 9, "0.25@180x240", 0.80) is None        # recovery re-arms it
    again = [m.record(t + 10 + i, "0.25@180x240", 0.5) for i in range(3)]
    assert again[-1] is not None


def test_each_point_has_its_own_baseline() -> None:
    m = AgreementMonitor(period_s=1.0, sustain=1, baseline_checks=1)
    m.record(0, "1.0@360x480", 0.95)
    m.record(1, "0.25@180x240", 0.60)
    assert m.record(2, "0.25@180x240", 0.58) is None     # low for 1.0, normal for 0.25
    assert m.record(3, "1.0@360x480", 0.70) is not None


def test_label_agreement_is_miou_against_the_reference_map() -> None:
    ref = np.array([[0, 0, 1, 1]], np.uint8)
    assert label_agreement(ref, ref, 3) == 1.0
    half = np.array([[0, 1, 1, 1]], np.uint8)   # class 0: 1/2, class 1: 2/3
    assert label_agreement(half, ref, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="differ in size"):
        label_agreement(half, ref[:, :2], 3)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="agreement_period_s must be >= 0"):
        AgreementMonitor(period_s=-1.0)
