"""RateMeter: steady rates, pauses, rate changes and a clock that goes back."""

import pytest

from slimseg_ros.control import RateMeter


def ticks(meter, start, hz, n):
    t = start
    for k in range(n):
        t = start + k / hz
        meter.tick(t)
    return t


def test_unknown_until_two_events():
    m = RateMeter()
    assert m.rate(0.0) is None
    m.tick(0.0)
    assert m.rate(0.0) is None
    m.tick(0.1)
    assert m.rate(0.1) == pytest.approx(10.0)


def test_steady_rate_with_jitter():
    m = RateMeter()
    for k in range(100):
        m.tick(k / 30 + (0.004 if k % 2 else -0.004))
    assert m.rate(99 / 30) == pytest.approx(30.0, rel=0.05)


def test_a_pause_is_not_averaged_in():
    m = RateMeter()
    last = ticks(m, 0.0, 10.0, 20)
    assert m.rate(last + 0.35) == pytest.approx(10.0)  # a late frame is not yet a pause
    assert m.rate(last + 0.5) is None                  # 4+ intervals without a frame: paused
    m.tick(last + 10.0)                                # camera back after 10 s
    assert m.rate(last + 10.0) is None
    m.tick(last + 10.1)
    assert m.rate(last + 10.1) == pytest.approx(10.0)  # the 10 s gap left no trace


def test_a_real_drop_shows_after_two_intervals():
    m = RateMeter()
    last = ticks(m, 0.0, 30.0, 30)
    m.tick(last + 0.2)
    m.tick(last + 0.4)
    assert m.rate(last + 0.4) == pytest.approx(5.0)


def test_a_rise_converges():
    m = RateMeter(alpha=0.1)
    last = ticks(m, 0.0, 5.0, 10)
    ticks(m, last + 1 / 30, 30.0, 60)
    assert m.rate(last + 2.0) == pytest.approx(30.0, rel=0.02)


def test_clock_going_back_starts_over():
    m = RateMeter()
    ticks(m, 100.0, 10.0, 10)
    m.tick(0.0)
    assert m.rate(0.0) is None
    m.tick(0.1)
    assert m.rate(0.1) == pytest.approx(10.0)


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.5}, {"gap_factor": 1.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RateMeter(**kwargs)
