"""Replay planning and scoring without ROS: schedules, loops, stamp matching with drops, the
switch timeline from ``~/width`` and the node's status."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from slimseg_ros.data import bagread
from slimseg_ros.eval import bagio
from slimseg_ros.data.msgcodec import BATTERY_TYPE, cdr_stamp_ns, typestore_for
from slimseg_ros.eval.replay_plan import ParamEvent, ReplayConfig, initial_params, plan_replay
from slimseg_ros.eval.replay_score import (
    ReceivedLabels, ReplayRecording, score_recording, switch_timeline)

NAMES = tuple(f"c{i}" for i in range(4))


def _bag(tmp_path, n=5, rate=10.0, battery=None, compressed=None):
    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8),
               rng.integers(0, 4, (8, 10), dtype=np.uint8)) for _ in range(n)]
    info = bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=rate, n_frames=n,
                                  battery=battery, compressed=compressed)
    return info, bagread.resolve_topics(info), frames


def test_plan_follows_recorded_rate_times_speed(tmp_path):
    info, topics, _ = _bag(tmp_path, n=5, rate=10.0, battery=(1.0, 0.5))
    plan = plan_replay(info, topics, ReplayConfig(speed=2.0))
    events = list(plan.events())
    frames = [e for e in events if e[1] == "publish" and e[2][2] is not None]
    assert [round(e[0], 6) for e in frames] == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert [e[2][2] for e in frames] == [bagio.DEFAULT_START_NS + i * 10**8 for i in range(5)]
    assert plan.frames == 5 and plan.duration_s == pytest.approx(0.2)
    # the bag's own battery goes out too, at its recorded times, before a frame of equal time
    battery = [e for e in events if e[2][0] == "/battery_state"]
    assert [round(e[0], 6) for e in battery] == [0.0, 0.2]
    assert events.index(battery[0]) < events.index(frames[0])
    assert plan.battery_series == [(0.0, pytest.approx(1.0)), (0.2, pytest.approx(0.5))]
    assert plan.publish_topics == {"/camera/image_raw": "sensor_msgs/msg/Image",
                                   "/battery_state": BATTERY_TYPE}


def test_loops_shift_stamps_and_keep_ground_truth(tmp_path):
    info, topics, _ = _bag(tmp_path, n=3, rate=10.0)
    plan = plan_replay(info, topics, ReplayConfig(loops=3))
    frames = [e for e in plan.events() if e[2][2] is not None]
    assert [round(e[0], 6) for e in frames] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    stamps = [e[2][2] for e in frames]
    assert len(set(stamps)) == 9
    # the bytes carry the new stamp, and each maps back to the frame it repeats
    assert [cdr_stamp_ns(e[2][1]) for e in frames] == stamps
    base = bagio.DEFAULT_START_NS
    assert [plan.original_stamp[s] - base for s in stamps] == [0, 10**8, 2 * 10**8] * 3
    assert plan.frames == 9


def test_synthetic_battery_and_parameter_events(tmp_path):
    info, topics, _ = _bag(tmp_path, n=11, rate=10.0, battery=(0.2, 0.2))
    config = ReplayConfig(battery=(1.0, 0.0), battery_rate_hz=5.0,
                          param_events=(ParamEvent(0.45, "target_fps", 15.0),))
    plan = plan_replay(info, topics, config)
    events = list(plan.events())
    store = typestore_for("humble")
    levels = [(t, store.deserialize_cdr(p[1], BATTERY_TYPE).percentage)
              for t, kind, p in events if kind == "publish" and p[0] == "/battery_state"]
    # replaces the bag's battery (which stays at 0.2) with a linear drain over the whole run
    assert [round(t, 6) for t, _ in levels] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert [round(v, 6) for _, v in levels] == [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    params = [(round(t, 6), p) for t, kind, p in events if kind == "param"]
    assert params == [(0.45, ("target_fps", 15.0))]
    times = [e[0] for e in events]
    assert times == sorted(times)


def test_repeated_stamps_cannot_be_matched(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    info = bagio.write_frames_bag(tmp_path / "bag", [(rgb, None)] * 2, rate_hz=1e12)
    with pytest.raises(ValueError, match="repeat header stamps"):
        plan_replay(info, bagread.resolve_topics(info), ReplayConfig())


def _label(stamp, t, width, pred):
    return ReceivedLabels(stamp_ns=stamp, t=t, width=width, height_px=pred.shape[0],
                          width_px=pred.shape[1], encoding="mono8", step=pred.shape[1],
                          data_z=zlib.compress(pred.tobytes()))


def test_stamp_matching_with_frames_dropped_on_purpose():
    rng = np.random.default_rng(5)
    truth = {s: rng.integers(0, 4, (6, 7), dtype=np.uint8) for s in range(100, 110)}
    sent = [(s, 0.1 * i) for i, s in enumerate(truth)]
    answered = [100, 101, 103, 104, 106, 107, 109]  # 102, 105, 108 dropped by the "node"
    labels = [_label(s, 0.1 * (s - 100) + 0.03, 1.0 if s < 105 else 0.5, truth[s])
              for s in answered]
    wrong = np.where(truth[109] == 0, 1, 0).astype(np.uint8)
    labels.append(_label(109, 1.0, 0.5, wrong))             # a second answer: not double counted
    labels.append(_label(999, 1.0, 0.5, truth[100]))        # not a frame we sent
    recording = SimpleNamespace(sent=sent, labels=labels)
    seen = []

    def gt(stamps):
        seen.append(set(stamps))
        return iter((s, truth[s]) for s in sorted(stamps))

    counts, scores = score_recording(recording, {s: s for s, _ in sent}, gt, NAMES)
    assert seen == [set(answered)]  # only the answered frames' ground truth is read
    assert counts["frames_sent"] == 10 and counts["frames_processed"] == 7
    assert counts["frames_dropped"] == 3 and counts["processed_fraction"] == 0.7
    assert counts["frames_scored"] == 7
    assert counts["unexpected_outputs"] == 1 and counts["duplicate_outputs"] == 1
    dropped = [f["stamp_ns"] for f in counts["frames"] if f["t_received"] is None]
    assert dropped == [102, 105, 108]
    assert counts["latency_ms"]["p50"] == pytest.approx(30.0)
    assert scores.summary()["miou"] == 1.0
    assert scores.summary(1.0)["frames"] == 4 and scores.summary(0.5)["frames"] == 3


def test_each_answer_reports_its_operating_point_with_frames_and_miou():
    truth = {1: np.array([[0, 1], [2, 3]], np.uint8), 2: np.array([[1, 1], [2, 2]], np.uint8)}
    sent = [(1, 0.0), (2, 0.1), (3, 0.2)]
    labels = [_label(1, 0.05, 1.0, truth[1]), _label(2, 0.15, 0.5, np.zeros((2, 2), np.uint8))]
    labels[0].point, labels[1].point = "1.0@360x480", "0.5@180x240"
    counts, _ = score_recording(SimpleNamespace(sent=sent, labels=labels), {1: 1, 2: 2, 3: 3},
                                lambda stamps: iter((s, truth[s]) for s in stamps if s in truth),
                                NAMES)
    assert [f["point"] for f in counts["frames"]] == ["1.0@360x480", "0.5@180x240", None]
    assert counts["points"]["1.0@360x480"] == {"frames": 1, "miou": 1.0}
    assert counts["points"]["0.5@180x240"]["frames"] == 1
    assert counts["points"]["0.5@180x240"]["miou"] < 1.0


def test_loop_answers_are_scored_against_the_original_frame():
    truth = {1: np.array([[0, 1], [2, 3]], np.uint8)}
    sent = [(1, 0.0), (11, 1.0)]
    labels = [_label(1, 0.05, 1.0, truth[1]), _label(11, 1.05, 0.25, truth[1][::-1].copy())]
    counts, scores = score_recording(SimpleNamespace(sent=sent, labels=labels), {1: 1, 11: 1},
                                     lambda stamps: iter((s, truth[s]) for s in stamps), NAMES)
    assert counts["frames_scored"] == 2
    assert scores.summary(1.0)["miou"] == 1.0 and scores.summary(0.25)["miou"] == 0.0


def test_received_labels_keep_their_pixels_row_by_row():
    """The client stores labels zlib-compressed; padded rows are read back without the padding."""
    pred = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = np.zeros((3, 6), np.uint8)
    padded[:, :4] = pred
    label = ReceivedLabels(1, 0.0, 1.0, 3, 4, "mono8", 6, zlib.compress(padded.tobytes()))
    np.testing.assert_array_equal(label.pixels(), pred)
    with pytest.raises(ValueError, match="mono8"):
        ReceivedLabels(1, 0.0, 1.0, 1, 1, "rgb8", 3, zlib.compress(bytes(3))).pixels()


def test_switch_timeline_takes_each_reason_from_the_first_status_showing_the_width():
    recording = ReplayRecording(
        widths=[(0.0, 1.0), (2.0, 0.75), (2.5, 0.75), (5.0, 0.25)],
        diagnostics=[(0.0, {"width": "1", "last_switch_reason": "start"}),
                     (1.0, {"width": "1", "last_switch_reason": "start"}),
                     (2.1, {"width": "0.75", "last_switch_reason": "battery 45% < 50%"}),
                     (3.1, {"width": "0.75", "last_switch_reason": "battery 45% < 50%"}),
                     (5.4, {"width": "0.25", "last_switch_reason": "battery 10% < 15%"})])
    assert switch_timeline(recording) == [
        {"t": 0.0, "width": 1.0, "reason": "start"},
        {"t": 2.0, "width": 0.75, "reason": "battery 45% < 50%"},
        {"t": 5.0, "width": 0.25, "reason": "battery 10% < 15%"}]
    # a switch no status showed (the width changed again within the second) has no reason
    recording.widths.insert(3, (4.0, 0.5))
    assert switch_timeline(recording)[2] == {"t": 4.0, "width": 0.5, "reason": ""}


def test_a_running_node_gets_the_width_and_target_fps_before_the_first_frame():
    assert initial_params(ReplayConfig(width=0.5, target_fps=10)) == []  # a started node:
    # its parameter file has them
    assert initial_params(ReplayConfig(spawn_node=False, width=0.5, target_fps=10)) == [
        ("width", 0.5), ("target_fps", 10.0)]


@pytest.mark.parametrize("kwargs,message", [
    ({"speed": 0}, "speed"), ({"loops": 0}, "loops"), ({"battery": (1.5, 0.1)}, "battery"),
    ({"domain_id": 300}, "domain"), ({"target_fps": -1}, "target_fps"),
])
def test_replay_config_checks_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReplayConfig(**kwargs)


def test_timing_only_replay_report(tmp_path):
    """A bag without labels still gives counts, latency and the timeline plot; no mIoU."""
    from slimseg_ros.eval.report import format_summary, write_report

    pred = np.zeros((4, 5), np.uint8)
    sent = [(s, 0.1 * s) for s in range(6)]
    labels = [_label(s, 0.1 * s + 0.02, 0.5, pred) for s in (0, 1, 3, 4)]
    recording = SimpleNamespace(sent=sent, labels=labels)
    counts, scores = score_recording(recording, {s: s for s, _ in sent}, None, NAMES)
    assert counts["frames_processed"] == 4 and counts["frames_scored"] == 0
    assert scores.widths == ()
    doc = {"mode": "replay", "bag": "b", "duration_s": 0.5, "speed": 1.0, "loops": 1,
           "overall": None, "widths": scores.per_width(),
           "width_timeline": [{"t": 0.0, "width": 0.5, "reason": "pinned"}],
           "battery_timeline": [], "param_changes": [], "fps": {"input": 10.0, "output": 8.0},
           **counts}
    paths = write_report(doc, scores, tmp_path / "r")
    assert sorted(p.name for p in paths) == ["metrics.json", "report.md", "timeline.png"]
    text = format_summary(doc)
    assert "6 sent, 4 processed (66.7%), 2 dropped, 0 scored" in text
    assert "width 0.5  pinned" in text


def test_agreement_timeline_keeps_each_change_of_the_nodes_checks():
    from slimseg_ros.eval.replay_score import ReplayRecording, agreement_timeline

    rec = ReplayRecording(diagnostics=[
        (0.0, {"agreement": "nan"}), (1.0, {"agreement": "0.812", "operating_point": "0.5@a"}),
        (2.0, {"agreement": "0.812", "operating_point": "0.5@a"}),
        (3.0, {"agreement": "0.400", "operating_point": "0.5@a"}), (4.0, {})])
    assert agreement_timeline(rec) == [[1.0, 0.812, "0.5@a"], [3.0, 0.4, "0.5@a"]]
