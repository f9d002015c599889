"""The controller at one input size (the widths alone: what the node runs with one size), traced
under a simulated clock.

``simulate`` replays a camera at a fixed rate into the controller the way the node does: every
arrival is reported, one worker runs the newest waiting frame ("latest frame wins"), and each
frame's width comes from ``decide`` at its start and its time goes to ``observe_frame`` at its
end. Latencies are CPU-like figures (37/45/69/70 ms at 0.25/0.5/0.75/1.0): 0.75 and 1.0 close.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import random
import subprocess
import sys
import threading

import pytest

from slimseg_ros.control import (
    POWER_SUPPLY_STATUS_CHARGING, POWER_SUPPLY_STATUS_DISCHARGING, POWER_SUPPLY_STATUS_FULL,
    ControllerConfig, PointController, width_points)

WIDTHS = (0.25, 0.5, 0.75, 1.0)
PROFILE = {0.25: 0.037, 0.5: 0.045, 0.75: 0.069, 1.0: 0.070}
SIZE = (360, 480)


def controller(profile=PROFILE, config=None, widths=WIDTHS):
    """The controller over ``widths`` at one size, seeded with ``profile`` (width -> s)."""
    return PointController(width_points(widths, SIZE),
                           {(w, SIZE): t for w, t in profile.items()}, config)


def predicted(ctrl, now):
    """Predicted seconds per width."""
    return {w: t for (w, _), t in ctrl.status(now).predicted_s.items()}


@dataclasses.dataclass
class Frame:
    begin: float
    width: float
    latency: float
    changed: bool
    reason: str


def simulate(ctrl, start, until, fps, latency, battery=None):
    """Run the camera from ``start`` to ``until``; return the processed frames.

    Args:
        latency: ``(width, begin) -> seconds``.
        battery: optional ``t -> (percentage, status)``, read once per second.
    """
    frames = []
    k = 0
    arrival = start
    next_battery = start
    running = None  # (begin, width, latency) of the frame being processed
    pending = False
    while True:
        end = running[0] + running[2] if running else math.inf
        if end <= arrival or (arrival >= until and running):
            ctrl.observe_frame(end, running[1], running[2])
            running = None
            if pending:
                pending = False
                running = _start(ctrl, end, latency, frames)
            continue
        if arrival >= until:
            return frames
        if battery is not None and next_battery <= arrival:
            ctrl.observe_battery(next_battery, *battery(next_battery))
            next_battery += 1.0
        ctrl.observe_input(arrival)
        if running:
            pending = True
        else:
            running = _start(ctrl, arrival, latency, frames)
        k += 1
        arrival = start + k / fps


def _start(ctrl, now, latency, frames):
    d = ctrl.decide(now)
    lat = latency(d.width, now)
    frames.append(Frame(now, d.width, lat, d.changed, d.reason))
    return now, d.width, lat


def profile_latency(scale=1.0, noise=0.0, seed=0):
    rng = random.Random(seed)
    return lambda w, t: PROFILE[w] * scale * (1.0 + rng.uniform(-noise, noise))


def switches(frames):
    return [(f.begin, f.width) for f in frames if f.changed]


def make(**config):
    return controller(config=ControllerConfig(**config))


# -- start ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fps, width", [(15.0, 0.5), (10.0, 1.0), (13.0, 0.75), (30.0, 0.25)])
def test_starts_at_the_widest_width_the_profile_fits(fps, width):
    # budget * 0.9: 60 ms at 15 fps (0.75 needs 69), 90 ms at 10 fps, 69.2 ms at 13 fps.
    ctrl = make(target_fps=fps)
    assert ctrl.width == width and ctrl.adaptive
    assert ctrl.decide(0.0).changed is False


def test_start_says_when_nothing_fits():
    ctrl = make(target_fps=30.0)
    assert "no allowed width is predicted to fit" in ctrl.decide(0.0).reason


def test_constructor_checks_widths_and_profile():
    with pytest.raises(ValueError, match=r"no time for width 0.75; it needs one for each of "
                                         r"0.25, 0.5, 0.75, 1"):
        controller({0.25: 0.03, 0.5: 0.04, 1.0: 0.07})
    with pytest.raises(ValueError, match=r"latency_profile\[0.5\] must be a positive time"):
        controller({**PROFILE, 0.5: 0.0})
    with pytest.raises(ValueError, match="no operating points"):
        controller({}, widths=())
    with pytest.raises(ValueError, match="point width must be a positive number"):
        controller({0.0: 0.01}, widths=(0.0,))
    with pytest.raises(ValueError, match=r"no model width lies in \[min_width, max_width\] = "
                                         r"\[0.55, 0.7\]"):
        controller(config=ControllerConfig(min_width=0.55, max_width=0.7))


# -- frame rate ----------------------------------------------------------------------------

def test_steady_load_with_jitter_never_switches():
    ctrl = make(target_fps=15.0)
    frames = simulate(ctrl, 0.0, 120.0, 15.0, profile_latency(noise=0.15))
    assert switches(frames) == []
    assert {f.width for f in frames} == {0.5}


def test_steps_down_after_exactly_overrun_frames_consecutive_overruns():
    ctrl = make(target_fps=10.0)  # 100 ms budget, 90 ms target: start at 1.0 (70 ms)
    slow = profile_latency(scale=1.9)  # from t=5: 133 / 131 / 85.5 ms
    frames = simulate(ctrl, 0.0, 20.0, 10.0,
                      lambda w, t: slow(w, t) if t >= 5.0 else PROFILE[w])
    late = [f for f in frames if f.begin >= 5.0]
    # 1.0's average after three slow frames is 1.44x its profile: 0.75 (69 ms x 1.44) would
    # not fit either, so the controller goes straight to 0.5 instead of overrunning at 0.75.
    assert [f.width for f in late[:4]] == [1.0, 1.0, 1.0, 0.5]
    assert {f.width for f in late[3:]} == {0.5}  # 85.5 ms fits the 100 ms budget
    assert "3 frames over the 100.0 ms budget (target 10 fps) at width 1" in late[3].reason
    assert ("0.5 predicted 64.8 ms (start-up profile x1.44, as measured at width 1) fits "
            "90.0 ms") in late[3].reason


def test_isolated_overruns_do_not_step_down():
    ctrl = make(target_fps=10.0, overrun_frames=3)
    spikes = lambda w, t: PROFILE[w] * (2.0 if int(t * 10) % 10 in (3, 4) else 1.0)  # noqa: E731
    frames = simulate(ctrl, 0.0, 60.0, 10.0, spikes)
    assert any(f.latency > 0.1 for f in frames)
    assert switches(frames) == []


def test_no_narrower_width_fits_takes_the_narrowest_allowed():
    ctrl = make(target_fps=10.0, min_width=0.5)
    assert ctrl.width == 1.0
    ctrl.set_config(ctrl.config.replace(target_fps=40.0))  # 22.5 ms: no width fits
    frames = simulate(ctrl, 0.0, 5.0, 40.0, profile_latency())
    (t, w), = switches(frames)
    assert w == 0.5  # past 0.75, down to min_width
    assert "no narrower width is predicted to fit 22.5 ms, taking the narrowest allowed" in (
        frames[-1].reason)


def test_steps_up_to_the_widest_fit_only_after_min_dwell_s_of_headroom():
    ctrl = make(target_fps=15.0, min_dwell_s=3.0)
    frames = simulate(ctrl, 0.0, 10.0, 15.0, profile_latency())
    assert ctrl.width == 0.5 and switches(frames) == []
    ctrl.set_config(ctrl.config.replace(target_fps=10.0))  # 90 ms target: 1.0 fits now
    frames = simulate(ctrl, 10.0, 20.0, 15.0, profile_latency())
    (t_up, w_up), = switches(frames)
    assert w_up == 1.0  # straight to the widest fit, past 0.75
    # Headroom is seen at the first frame after the change (t = 10) and must last 3 s.
    assert t_up == pytest.approx(13.0)
    assert frames[-1].reason == ("headroom for 3.0 s: width 1 predicted 70.0 ms fits 90.0 ms "
                                 "(100.0 ms budget (target 10 fps) less 10% margin)")


def test_a_camera_slower_than_target_fps_widens_the_budget():
    ctrl = make(target_fps=15.0, min_dwell_s=3.0)
    assert ctrl.width == 0.5
    frames = simulate(ctrl, 0.0, 10.0, 5.0, profile_latency())
    # The second frame gives the rate (5 fps, 200 ms budget); headroom from then on.
    assert switches(frames) == [(pytest.approx(3.2), 1.0)]
    assert "(200.0 ms budget (input 5.0 fps) less 10% margin)" in frames[-1].reason
    assert ctrl.status(10.0).budget_s == pytest.approx(0.2)


def test_a_camera_faster_than_target_fps_does_not_shrink_the_budget():
    ctrl = make(target_fps=10.0)
    frames = simulate(ctrl, 0.0, 10.0, 30.0, profile_latency())
    assert {f.width for f in frames} == {1.0}
    assert ctrl.status(10.0).budget_s == pytest.approx(0.1)


def test_headroom_must_last_without_a_break():
    ctrl = make(target_fps=15.0, min_dwell_s=3.0)
    assert ctrl.width == 0.5
    # The camera alternates 2 s at 5 fps (room for 1.0) and 0.6 s at 30 fps (none).
    t = 0.0
    frames = []
    for _ in range(10):
        frames += simulate(ctrl, t, t + 2.0, 5.0, profile_latency())
        frames += simulate(ctrl, t + 2.0, t + 2.6, 30.0, profile_latency())
        t += 2.6
    assert switches(frames) == []


def test_min_dwell_zero_steps_up_at_once():
    ctrl = make(target_fps=15.0, min_dwell_s=0.0)
    frames = simulate(ctrl, 0.0, 2.0, 5.0, profile_latency())
    assert switches(frames) == [(pytest.approx(0.2), 1.0)]  # as soon as the rate is known


def test_a_persistent_slowdown_costs_overrun_frames_late_frames_once():
    ctrl = make(target_fps=10.0, latency_memory_s=30.0, min_dwell_s=3.0)
    frames = simulate(ctrl, 0.0, 200.0, 10.0, profile_latency(scale=1.9))
    # Once 1.0's measured latencies are forgotten, its prediction is its profile time scaled
    # by the load seen at 0.5 (1.9x): still too slow, so the wider widths are never re-probed.
    assert [w for _, w in switches(frames)] == [0.5]
    assert sum(f.latency > 0.1 for f in frames) == 3


def test_after_a_slow_spell_the_controller_widens_again():
    ctrl = make(target_fps=10.0, latency_memory_s=30.0, min_dwell_s=3.0)
    slow = lambda w, t: PROFILE[w] * (1.9 if 5.0 <= t < 20.0 else 1.0)  # noqa: E731
    frames = simulate(ctrl, 0.0, 60.0, 10.0, slow)
    (t_down, _), (t_075, _), (t_up, _) = switches(frames)
    assert [w for _, w in switches(frames)] == [0.5, 0.75, 1.0]
    # 0.75 never ran: its profile time, scaled by 0.5's average, fits again a few frames after
    # the load ends, plus min_dwell_s.
    assert 20.0 + 3.0 < t_075 < 20.0 + 3.0 + 1.0
    # 1.0's slow average (measured at t = 5.0-5.2) is trusted for latency_memory_s, then
    # replaced by its scaled profile time.
    assert 5.2 + 30.0 + 3.0 < t_up < 5.2 + 30.0 + 3.0 + 0.5
    assert frames[-1].width == 1.0


def test_a_profile_taken_under_load_does_not_keep_the_controller_narrow():
    # The start-up profile was measured while the robot booted: 3x today's times. At 15 fps
    # (60 ms target) only 0.25 seems to fit; 0.25 then runs at a third of its profile time.
    busy = {w: 3.0 * t for w, t in PROFILE.items()}
    ctrl = controller(busy, ControllerConfig(target_fps=15.0, min_dwell_s=3.0))
    assert ctrl.width == 0.25
    frames = simulate(ctrl, 0.0, 20.0, 15.0, profile_latency())
    # 0.75 and 1.0 need 69-70 ms and would not fit: 0.5 (45 ms) is the widest that does
    assert [w for _, w in switches(frames)] == [0.5]
    assert 3.0 < switches(frames)[0][0] < 4.0
    assert "start-up profile x0." in frames[-1].reason
    assert all(f.latency <= 1 / 15.0 for f in frames)


def test_predictions_without_fresh_measurements_follow_the_width_in_use():
    ctrl = make(target_fps=10.0, latency_memory_s=30.0)
    assert predicted(ctrl, 0.0) == PROFILE  # nothing measured: the profile itself
    for k in range(40):
        ctrl.observe_frame(0.1 * k, 1.0, 2 * PROFILE[1.0])
    now = predicted(ctrl, 4.0)
    assert now[1.0] == pytest.approx(2 * PROFILE[1.0], rel=1e-3)
    for w in (0.25, 0.5, 0.75):
        assert now[w] == pytest.approx(2 * PROFILE[w], rel=1e-3)
    # Once every measurement is older than latency_memory_s, the profile is all there is.
    assert predicted(ctrl, 40.0) == PROFILE


def test_nonsense_frame_times_are_ignored():
    ctrl = make(target_fps=10.0)
    for k in range(10):
        ctrl.observe_frame(k * 0.1, 1.0, math.nan)
        ctrl.observe_frame(k * 0.1, 1.0, -1.0)
    assert ctrl.decide(1.0).changed is False
    assert predicted(ctrl, 1.0)[1.0] == PROFILE[1.0]
    with pytest.raises(ValueError, match="width 0.6 is not one of the model's widths"):
        ctrl.observe_frame(1.0, 0.6, 0.05)


# -- battery -------------------------------------------------------------------------------

def drain(start_pct, end_pct, t0, t1):
    def reading(t):
        p = start_pct + (end_pct - start_pct) * (t - t0) / (t1 - t0)
        return p, POWER_SUPPLY_STATUS_DISCHARGING
    return reading


def test_a_draining_battery_steps_the_width_down_at_each_threshold():
    ctrl = make(target_fps=10.0)  # 1.0 fits the frame rate throughout
    frames = simulate(ctrl, 0.0, 100.0, 10.0, profile_latency(),
                      battery=drain(0.6025, 0.1025, 0.0, 100.0))
    # 0.6025 - 0.005 t: below 0.5 after t = 20.5, 0.3 after 60.5, 0.15 after 90.5.
    got = switches(frames)
    assert [w for _, w in got] == [0.75, 0.5, 0.25]
    for (t, _), t_cross in zip(got, (20.5, 60.5, 90.5)):
        assert t_cross < t <= t_cross + 1.1  # readings come once per second
    assert frames[-1].reason == "battery at 14.8% (threshold 15%): cap 0.25"


def test_a_noisy_percentage_near_a_threshold_does_not_flap():
    ctrl = make(target_fps=10.0, battery_hysteresis=0.03)
    rng = random.Random(1)
    noisy = lambda t: (0.3 + rng.uniform(-0.02, 0.02), POWER_SUPPLY_STATUS_DISCHARGING)  # noqa
    frames = simulate(ctrl, 0.0, 120.0, 10.0, profile_latency(), battery=noisy)
    assert [w for _, w in switches(frames)] == [0.5]


def test_the_cap_lifts_only_above_threshold_plus_hysteresis_then_after_dwell():
    ctrl = make(target_fps=10.0, battery_hysteresis=0.03, min_dwell_s=3.0)
    ctrl.observe_battery(0.0, 0.45, POWER_SUPPLY_STATUS_DISCHARGING)
    assert ctrl.decide(0.0).width == 0.75
    frames = simulate(ctrl, 0.0, 10.0, 10.0, profile_latency(),
                      battery=lambda t: (0.52, POWER_SUPPLY_STATUS_DISCHARGING))
    assert switches(frames) == []  # 0.52 < 0.5 + 0.03
    frames = simulate(ctrl, 10.0, 20.0, 10.0, profile_latency(),
                      battery=lambda t: (0.53, POWER_SUPPLY_STATUS_DISCHARGING))
    assert switches(frames) == [(pytest.approx(13.0), 1.0)]


@pytest.mark.parametrize("status, text", [(POWER_SUPPLY_STATUS_CHARGING, "charging"),
                                          (POWER_SUPPLY_STATUS_FULL, "battery full")])
def test_charging_or_full_removes_the_cap(status, text):
    ctrl = make(target_fps=10.0, min_dwell_s=3.0)
    ctrl.observe_battery(0.0, 0.1, POWER_SUPPLY_STATUS_DISCHARGING)
    assert ctrl.decide(0.0).width == 0.25
    frames = simulate(ctrl, 0.0, 10.0, 10.0, profile_latency(), battery=lambda t: (0.1, status))
    assert switches(frames) == [(pytest.approx(3.0), 1.0)]
    status_now = ctrl.status(10.0)
    assert status_now.battery == text and status_now.battery_cap is None


def test_a_stale_reading_stops_capping():
    ctrl = make(target_fps=10.0, battery_timeout_s=30.0, min_dwell_s=3.0)
    ctrl.observe_battery(0.0, 0.2, POWER_SUPPLY_STATUS_DISCHARGING)
    frames = simulate(ctrl, 0.0, 40.0, 10.0, profile_latency())
    assert [w for _, w in switches(frames)] == [0.5, 1.0]
    t_up = switches(frames)[1][0]
    assert 33.0 < t_up <= 33.2
    assert ctrl.status(40.0).battery == "battery reading 40 s old, ignored"


@pytest.mark.parametrize("percentage", [math.nan, 57.0, -0.2])
def test_unusable_percentages_change_nothing(percentage):
    ctrl = make(target_fps=10.0)
    ctrl.observe_battery(0.0, 0.8, POWER_SUPPLY_STATUS_DISCHARGING)
    warning = ctrl.observe_battery(1.0, percentage, POWER_SUPPLY_STATUS_DISCHARGING)
    assert (warning is None) == math.isnan(percentage)
    d = ctrl.decide(1.0)
    assert d.width == 1.0 and not d.changed
    assert ctrl.status(1.0).battery == "battery at 80%"


def test_battery_caps_map_onto_model_widths_and_min_width_wins():
    ctrl = controller(config=ControllerConfig(
        target_fps=10.0, battery_thresholds=(0.5, 0.2), battery_widths=(0.6, 0.1),
        min_width=0.5))
    ctrl.observe_battery(0.0, 0.4, POWER_SUPPLY_STATUS_DISCHARGING)
    assert ctrl.decide(0.0).width == 0.5  # 0.6 is no model width: the widest below it
    ctrl.observe_battery(1.0, 0.1, POWER_SUPPLY_STATUS_DISCHARGING)
    d = ctrl.decide(1.0)
    assert d.width == 0.5 and not d.changed
    assert ctrl.status(1.0).battery_cap == 0.25  # below every model width: the narrowest


def test_cap_below_min_width_says_so():
    ctrl = make(target_fps=10.0, min_width=0.5)
    ctrl.observe_battery(0.0, 0.1, POWER_SUPPLY_STATUS_DISCHARGING)
    d = ctrl.decide(0.0)
    assert (d.width, d.changed) == (0.5, True)
    assert d.reason == "battery at 10% (threshold 15%): cap 0.25, raised to min_width 0.5"


def test_new_thresholds_reclassify_the_last_reading():
    ctrl = make(target_fps=10.0)
    ctrl.observe_battery(0.0, 0.4, POWER_SUPPLY_STATUS_DISCHARGING)
    assert ctrl.decide(0.0).width == 0.75
    ctrl.set_config(ctrl.config.replace(battery_thresholds=(0.45, 0.3),
                                        battery_widths=(0.5, 0.25)))
    assert ctrl.decide(0.1).width == 0.5


# -- operator, limits and settings ---------------------------------------------------------

def test_pin_holds_against_overruns_and_battery_and_resume_starts_from_it():
    ctrl = make(target_fps=10.0)
    d = ctrl.pin(0.75)
    assert (d.width, d.changed, ctrl.adaptive) == (0.75, True, False)
    assert d.reason == "pinned at 0.75 by the operator"
    ctrl.observe_battery(0.0, 0.05, POWER_SUPPLY_STATUS_DISCHARGING)
    frames = simulate(ctrl, 0.0, 10.0, 10.0, profile_latency(scale=3.0))
    assert {f.width for f in frames} == {0.75} and switches(frames) == []
    ctrl.observe_battery(10.0, 0.9, POWER_SUPPLY_STATUS_DISCHARGING)
    ctrl.set_adaptive(True)
    assert ctrl.decide(10.0).width == 0.75  # no jump when adaptation resumes
    # The overruns seen while pinned do not count: three new ones are needed.
    for k in range(1, 3):
        ctrl.observe_frame(10.0 + 0.2 * k, 0.75, 0.2)
        assert ctrl.decide(10.0 + 0.2 * k).changed is False
    ctrl.observe_frame(10.6, 0.75, 0.2)
    # 0.75 runs at ~3x its profile, so 0.5 and 0.25 are predicted over the 90 ms target too
    d = ctrl.decide(10.6)
    assert d.width == 0.25 and "no narrower width is predicted to fit" in d.reason


def test_pin_rejects_other_widths_and_changes_nothing():
    ctrl = make(target_fps=10.0)
    with pytest.raises(ValueError, match=r"^width 0.6 is not one of the model's widths "
                                         r"\(0.25, 0.5, 0.75, 1\)$"):
        ctrl.pin(0.6)
    assert (ctrl.width, ctrl.adaptive) == (1.0, True)
    assert ctrl.pin(0.5000000001).width == 0.5  # a double that went through YAML


def test_adaptive_off_holds_the_current_width():
    ctrl = make(target_fps=10.0)
    ctrl.set_adaptive(False)
    frames = simulate(ctrl, 0.0, 5.0, 10.0, profile_latency(scale=3.0))
    assert {f.width for f in frames} == {1.0}
    assert frames[0].reason == "held at 1: adaptive is off"


def test_max_and_min_width_apply_at_once():
    ctrl = make(target_fps=10.0)
    ctrl.set_config(ctrl.config.replace(max_width=0.6))
    d = ctrl.decide(0.0)
    assert (d.width, d.changed, d.reason) == (0.5, True, "max_width is 0.6")
    ctrl.set_config(ctrl.config.replace(max_width=1.0, min_width=0.7))
    d = ctrl.decide(0.1)
    assert (d.width, d.changed, d.reason) == (0.75, True, "min_width is 0.7")


def test_a_pin_outside_min_and_max_width_is_refused():
    ctrl = make(target_fps=10.0)
    ctrl.set_config(ctrl.config.replace(max_width=0.75))
    with pytest.raises(ValueError, match=r"^width 1 is outside \[min_width, max_width\] = "
                                         r"\[0, 0.75\]; .* pin one of 0.25, 0.5, 0.75$"):
        ctrl.pin(1.0)
    assert ctrl.adaptive
    assert ctrl.pin(0.75).width == 0.75


def test_a_held_width_follows_new_limits_at_the_next_decision():
    ctrl = make(target_fps=10.0)
    ctrl.pin(1.0)
    ctrl.set_config(ctrl.config.replace(max_width=0.5))
    d = ctrl.decide(0.0)
    assert (d.width, d.changed, d.reason) == (0.5, True, "held width 1 is above max_width 0.5")
    assert not ctrl.adaptive
    ctrl.set_config(ctrl.config.replace(max_width=1.0, min_width=0.75))
    d = ctrl.decide(0.1)
    assert (d.width, d.changed, d.reason) == (0.75, True, "held width 0.5 is below min_width "
                                                          "0.75")


def test_a_config_without_a_model_width_in_range_is_rejected_whole():
    ctrl = make(target_fps=10.0)
    before = ctrl.config
    with pytest.raises(ValueError, match=r"the model's widths are 0.25, 0.5, 0.75, 1"):
        ctrl.set_config(before.replace(min_width=0.8, max_width=0.9))
    assert ctrl.config is before
    with pytest.raises(TypeError):
        ctrl.set_config({"target_fps": 5.0})


# -- time and threads ----------------------------------------------------------------------

def test_a_clock_that_jumps_back_keeps_ages():
    # A looping bag under sim time: time goes from 100 s back to 0.
    ctrl = make(target_fps=10.0, battery_timeout_s=30.0)
    ctrl.observe_battery(99.0, 0.2, POWER_SUPPLY_STATUS_DISCHARGING)
    assert ctrl.decide(100.0).width == 0.5
    assert ctrl.decide(0.0).width == 0.5
    assert ctrl.status(28.0).battery_cap == 0.5        # 29 s old
    assert ctrl.status(30.0).battery_cap is None       # 31 s old
    frames = simulate(ctrl, 30.0, 40.0, 10.0, profile_latency())
    assert frames[-1].width == 1.0


def test_status_reports_what_the_node_publishes():
    ctrl = make(target_fps=15.0)
    simulate(ctrl, 0.0, 5.0, 10.0, profile_latency(),
             battery=lambda t: (0.4, POWER_SUPPLY_STATUS_DISCHARGING))
    s = ctrl.status(5.0)
    # 10 fps camera: 100 ms budget, room for 1.0, but the battery caps at 0.75.
    assert s.width == 0.75 and s.adaptive and s.switches == 1
    assert s.input_fps == pytest.approx(10.0)
    assert s.budget_s == pytest.approx(0.1)
    assert predicted(ctrl, 5.0)[0.75] == pytest.approx(0.069)
    assert (s.battery, s.battery_cap) == ("battery at 40% (threshold 50%): cap 0.75", 0.75)


def test_concurrent_callers_see_consistent_state():
    ctrl = make(target_fps=10.0)
    errors = []
    stop = threading.Event()

    def hammer(fn):
        try:
            k = 0
            while not stop.is_set():
                fn(k)
                k += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    jobs = [
        lambda k: ctrl.observe_input(k * 0.01),
        lambda k: ctrl.observe_frame(k * 0.01, WIDTHS[k % 4], 0.05 + 0.1 * (k % 3 == 0)),
        lambda k: ctrl.observe_battery(k * 0.01, (k % 100) / 100, POWER_SUPPLY_STATUS_DISCHARGING),
        lambda k: ctrl.set_config(ctrl.config.replace(target_fps=5.0 + k % 20)),
        lambda k: ctrl.pin(0.5) if k % 50 == 0 else ctrl.set_adaptive(True),
    ]
    threads = [threading.Thread(target=hammer, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    seen = set()
    for k in range(3000):
        seen.add(ctrl.decide(k * 0.01).width)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen <= set(WIDTHS)


def test_control_needs_no_ros_torch_or_numpy():
    code = ("import sys, slimseg_ros.control; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'torch', 'numpy', 'sensor_msgs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
