"""The operating-point controller with several input sizes, under a simulated clock.

(At one size, the widths alone: test_control_controller.py.)
"""

from __future__ import annotations

import pytest

from slimseg_ros.control import POWER_SUPPLY_STATUS_DISCHARGING, ControllerConfig
from slimseg_ros.control.front import ControlPoint, pareto_front
from slimseg_ros.control.points import PointController

BIG, MID, SMALL = (360, 480), (270, 360), (180, 240)
WIDTHS = (0.25, 0.5, 0.75, 1.0)
BASE_MS = {0.25: 20.0, 0.5: 30.0, 0.75: 45.0, 1.0: 60.0}  # at 360x480
SCALE = {BIG: 1.0, MID: 0.6, SMALL: 0.3}
# mIoU per point; 1.0@360x480 is made *less* accurate than 0.75@360x480 (and slower): dominated.
ACC = {
    (0.25, BIG): 0.50, (0.5, BIG): 0.58, (0.75, BIG): 0.63, (1.0, BIG): 0.62,
    (0.25, MID): 0.47, (0.5, MID): 0.56, (0.75, MID): 0.61, (1.0, MID): 0.615,
    (0.25, SMALL): 0.40, (0.5, SMALL): 0.48, (0.75, SMALL): 0.52, (1.0, SMALL): 0.53,
}
LAT = {(w, s): BASE_MS[w] * SCALE[s] / 1e3 for w in WIDTHS for s in (BIG, MID, SMALL)}
COST = {(w, s): w * w * s[0] * s[1] / 1e5 for w in WIDTHS for s in (BIG, MID, SMALL)}
POINTS = [ControlPoint(w, s, ACC[(w, s)], COST[(w, s)]) for (w, s) in LAT]


def make(latency=LAT, **config) -> PointController:
    return PointController(POINTS, latency, ControllerConfig(**config))


def run(ctrl: PointController, start: float, until: float, fps: float, latency) -> list:
    """A camera at ``fps``; each frame is decided, run (``latency(point, t)`` seconds) and
    reported before the next arrives (frames that would be dropped are simply not started)."""
    points = []
    t = start
    busy_until = start
    while t < until:
        ctrl.observe_input(t)
        if t >= busy_until:
            d = ctrl.decide(t)
            lat = latency((d.width, d.size), t)
            ctrl.observe_frame(t + lat, d.width, lat, d.size)
            busy_until = t + lat
            points.append((d.width, d.size))
        t += 1.0 / fps
    return points


def test_the_front_drops_dominated_points_and_ties_in_latency_do_not_dominate() -> None:
    front = pareto_front(POINTS, LAT)
    keys = [p.key for p in front]
    assert (1.0, BIG) not in keys            # slower and less accurate than 0.75@360x480
    assert (0.25, BIG) not in keys           # 0.5@270x360: 18 ms vs 20 ms and 0.56 > 0.50
    assert keys[-1] == (0.75, BIG)           # the most accurate point ends the front
    accs = [p.accuracy for p in front]
    lats = [LAT[p.key] for p in front]
    assert accs == sorted(accs) and lats == sorted(lats)
    tie = [ControlPoint(0.25, BIG, 0.5, 1.0), ControlPoint(0.5, BIG, 0.6, 2.0)]
    assert len(pareto_front(tie, {(0.25, BIG): 0.02, (0.5, BIG): 0.02})) == 2


@pytest.mark.parametrize("fps", [10.0, 15.0, 20.0, 30.0, 50.0])
def test_starts_at_the_most_accurate_point_that_fits(fps: float) -> None:
    ctrl = make(target_fps=fps)
    target = 0.9 / fps
    fitting = [p for p in pareto_front(POINTS, LAT) if LAT[p.key] <= target]
    assert ctrl.point == max(fitting, key=lambda p: p.accuracy).key


@pytest.mark.parametrize("fps", [5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 80.0])
def test_dominated_points_are_never_chosen_under_changing_load(fps: float) -> None:
    ctrl = make(target_fps=fps, min_dwell_s=1.0)
    dominated = {p.key for p in POINTS} - {p.key for p in pareto_front(POINTS, LAT)}

    def latency(point, t):  # the machine slows 3x between 5 and 10 s
        return LAT[point] * (3.0 if 5.0 <= t < 10.0 else 1.0)

    chosen = set(run(ctrl, 0.0, 20.0, fps, latency))
    assert len(chosen) >= 1 and not chosen & dominated


def test_overruns_step_down_to_a_smaller_size_and_dwell_steps_back_up() -> None:
    ctrl = make(target_fps=15.0, min_dwell_s=3.0, overrun_frames=3)
    assert ctrl.point == (0.75, BIG)

    def latency(point, t):  # a busy spell 2..6 s doubles every time
        return LAT[point] * (2.0 if 2.0 <= t < 6.0 else 1.0)

    # A point that overran keeps its high average for latency_memory_s (30 s), as widths do.
    trace = run(ctrl, 0.0, 45.0, 15.0, latency)
    assert (0.75, BIG) in trace[:5]
    # while busy: a less accurate front point that fits (2 x 27 ms = 54 ms <= 60 ms)
    busy = trace[len(trace) // 3]
    assert busy != (0.75, BIG) and ACC[busy] < ACC[(0.75, BIG)]
    assert trace[-1] == (0.75, BIG)                  # headroom again: back up
    switches = sum(a != b for a, b in zip(trace, trace[1:]))
    assert switches <= 4                             # down once or twice, up once or twice


def test_a_steady_load_near_the_budget_never_flaps() -> None:
    ctrl = make(target_fps=15.0, min_dwell_s=3.0)
    jitter = iter([0.95, 1.05, 1.0, 1.08, 0.92] * 200)
    trace = run(ctrl, 0.0, 30.0, 15.0, lambda p, t: LAT[p] * next(jitter))
    assert set(trace) == {(0.75, BIG)}


def test_a_width_pin_leaves_the_size_to_the_budget() -> None:
    ctrl = make(target_fps=40.0, min_dwell_s=1.0)   # 22.5 ms target
    d = ctrl.pin(1.0)
    assert not ctrl.adaptive and d.width == 1.0
    assert d.size == SMALL                          # 18 ms fits; 1.0@270x360 (36 ms) does not
    ctrl.set_config(ctrl.config.replace(target_fps=10.0))
    trace = run(ctrl, 0.0, 10.0, 10.0, lambda p, t: LAT[p])
    assert {w for w, _ in trace} == {1.0}
    # 1.0@360x480 is dominated by 0.75@360x480, but not among the points the pin allows
    assert trace[-1] == (1.0, BIG)
    ctrl.set_adaptive(True)
    assert ctrl.adaptive
    trace = run(ctrl, 10.0, 20.0, 10.0, lambda p, t: LAT[p])
    assert trace[-1] == (0.75, BIG)                 # resumes: the most accurate that fits


def test_a_resolution_pin_leaves_the_width_to_the_budget() -> None:
    ctrl = make(target_fps=15.0, min_dwell_s=1.0)
    d = ctrl.pin_size(SMALL)
    assert (d.width, d.size) == (1.0, SMALL) and not ctrl.adaptive
    with pytest.raises(ValueError, match=r"100x100 is not one of the input sizes "
                                         r"\(360x480, 270x360, 180x240\)"):
        ctrl.pin_size((100, 100))
    assert ctrl.point == (1.0, SMALL)               # a refused pin changes nothing

    def latency(point, t):  # 5x slower: at 180x240 only 0.25 and 0.5 fit 60 ms
        return LAT[point] * 5.0

    trace = run(ctrl, 0.0, 10.0, 15.0, latency)
    assert {s for _, s in trace} == {SMALL}
    assert trace[-1] == (0.5, SMALL)
    d = ctrl.pin_size(None)
    assert ctrl.adaptive


def test_both_pins_hold_the_point_whatever_the_load() -> None:
    ctrl = make(target_fps=15.0)
    ctrl.pin(0.5)
    ctrl.pin_size(MID)
    trace = run(ctrl, 0.0, 5.0, 15.0, lambda p, t: 0.5)
    assert set(trace) == {(0.5, MID)}


def test_battery_caps_the_cost_not_the_width_alone() -> None:
    ctrl = make(target_fps=5.0, battery_thresholds=(0.3,), battery_widths=(0.5,))
    assert ctrl.point == (0.75, BIG)
    ctrl.observe_battery(1.0, 0.2, POWER_SUPPLY_STATUS_DISCHARGING)
    d = ctrl.decide(1.0)
    cap = COST[(0.5, BIG)]
    assert d.changed and COST[(d.width, d.size)] <= cap
    assert "cap 0.5" in d.reason
    # e.g. 0.75@270x360 (0.5625 x 972 = 547) is over the cap (0.25 x 1728 = 432);
    # 0.75@180x240 (0.5625 x 432 = 243) is under it.
    assert COST[(0.75, MID)] > cap >= COST[(0.75, SMALL)]
    allowed = {p.key for p in POINTS if p.cost <= cap}
    assert (d.width, d.size) in allowed
    best = max((p for p in pareto_front([p for p in POINTS if p.key in allowed], LAT)),
               key=lambda p: p.accuracy)
    trace = run(ctrl, 1.0, 20.0, 5.0, lambda p, t: LAT[p])
    assert all(COST[p] <= cap for p in trace) and trace[-1] == best.key
    assert ctrl.status(20.0).cost_cap_gflops == pytest.approx(cap)


def test_status_reports_the_point_pins_and_front() -> None:
    ctrl = make(target_fps=15.0)
    ctrl.pin_size(MID)
    s = ctrl.status(0.0)
    assert (s.width, s.size, s.pinned_size, s.pinned_width) == (1.0, MID, MID, None)
    assert all(size == MID for _, size in s.front)
    assert "resolution pinned at 270x360" in s.reason


def test_profile_must_cover_every_point() -> None:
    with pytest.raises(ValueError, match=r"no time for 0.5@270x360; it needs one for each"):
        PointController(POINTS, {k: v for k, v in LAT.items() if k != (0.5, MID)})
    with pytest.raises(ValueError, match="given twice"):
        PointController(POINTS + POINTS[:1], LAT)


def test_a_pinned_width_keeps_its_width_on_a_low_battery_but_its_size_shrinks() -> None:
    ctrl = make(target_fps=5.0, battery_thresholds=(0.3,), battery_widths=(0.25,))
    ctrl.pin(1.0)
    assert ctrl.point == (1.0, BIG)
    ctrl.observe_battery(1.0, 0.2, POWER_SUPPLY_STATUS_DISCHARGING)
    d = ctrl.decide(1.0)
    # cap = cost of 0.25@360x480 (1728 x 0.0625 = 108); every 1.0 point costs more, so the
    # cheapest 1.0 point is kept
    assert d.changed and (d.width, d.size) == (1.0, SMALL)
    assert "pinned width 1 at its cheapest size" in d.reason
    ctrl.observe_battery(2.0, 0.9, POWER_SUPPLY_STATUS_DISCHARGING)
    trace = run(ctrl, 2.0, 10.0, 5.0, lambda p, t: LAT[p])
    assert {w for w, _ in trace} == {1.0} and trace[-1] == (1.0, BIG)
