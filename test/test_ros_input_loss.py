"""Frames lost before the node: the meter (pure) and the node's WARN with a real lossy camera.

The lossy camera is real: another process publishing 640x480 rgb8 best effort at 30 Hz on Fast
DDS defaults, which loses most frames in transport on one machine (docs/transport.md); the same
camera with the package's profile loses none, and the node must stay quiet for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from slimseg_ros.ros.input_loss import InputLoss, InputLossMeter, loss_warning, profile_hint

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_data.xml"
TOPIC = "/camera/image_raw"


# -- the meter -------------------------------------------------------------------------------

def test_sequence_gaps_count_the_frames_between_two_taken_ones() -> None:
    meter = InputLossMeter()
    meter.new_subscription(event_supported=False)
    for seq in (1, 2, 5, 6, 10):  # 3, 4 and 7, 8, 9 never arrived
        meter.on_message(b"cam", seq)
    loss = meter.summary(0.0)
    assert (loss.received, loss.lost, loss.lost_in_transport) == (5, 5, 0)
    assert loss.source == "sequence"


def test_publishers_and_subscriptions_are_compared_only_with_themselves() -> None:
    meter = InputLossMeter()
    meter.new_subscription(event_supported=True)
    meter.on_message(b"a", 10)
    meter.on_message(b"b", 500)  # another camera's numbering: no gap
    meter.on_message(b"a", 11)
    meter.on_message(b"a", 9)  # reordered: neither a gap nor a new reference
    meter.on_message(b"a", 12)
    assert meter.lost == 0
    meter.new_subscription(event_supported=True)  # re-subscribed: what was missed meanwhile
    meter.on_message(b"a", 40)  # is not the camera's loss
    meter.forget_publisher(b"b")
    meter.on_message(b"b", 900)
    assert meter.lost == 0
    meter.on_message(b"a", 42)
    assert meter.lost == 1


def test_the_larger_signal_counts_and_events_count_without_any_frame() -> None:
    meter = InputLossMeter()
    meter.new_subscription(event_supported=True)
    for _ in range(30):  # nothing at all arrives: only the middleware knows
        meter.on_lost_event(1)
    meter.on_lost_event(0)
    loss = meter.summary(1.0)
    assert (loss.received, loss.lost, loss.lost_in_transport, loss.source) == (0, 30, 30, "event")
    meter.on_message(b"cam", 1)
    meter.on_message(b"cam", 100)  # 98 skipped: more than the events said
    assert meter.lost == 98


def test_recent_counts_cover_the_window_and_forget_older_loss() -> None:
    meter = InputLossMeter(window_s=5.0)
    meter.new_subscription(event_supported=True)
    assert meter.summary(0.0).recent_fraction is None  # nothing sent yet
    seq = 0
    for t in range(1, 11):  # 30 Hz camera, 10 s: all lost for 3 s, then all arrive
        for _ in range(30):
            seq += 1
            if t <= 3:
                meter.on_lost_event(1)
            else:
                meter.on_message(b"cam", seq)
        loss = meter.summary(float(t))
        if t == 3:
            assert loss.recent_fraction == 1.0 and loss.recent_lost == 90
        if t == 10:
            assert loss.recent_lost == 0 and loss.recent_received == 150
            assert loss.window_s == 5.0 and loss.lost == 90
    with pytest.raises(ValueError, match="window_s"):
        InputLossMeter(window_s=0)


def _loss(received: int, lost: int, in_transport: int) -> InputLoss:
    return InputLoss(received=received, lost=lost, lost_in_transport=in_transport,
                     recent_received=received, recent_lost=lost,
                     recent_lost_in_transport=in_transport, window_s=5.0, source="event")


def test_the_warning_names_the_loss_and_the_fix_for_its_cause() -> None:
    said = loss_warning(_loss(4, 146, 146), "FASTDDS_DEFAULT_PROFILES_FILE=/p.xml")
    assert said is not None and said.startswith("97% of camera frames lost before the node "
                                                 "(146 of 150 in the last 5 s), in DDS transport")
    assert "FASTDDS_DEFAULT_PROFILES_FILE=/p.xml" in said and "reliable" in said
    queue = loss_warning(_loss(100, 50, 0), "X")
    assert queue is not None and "input queue" in queue and "X" not in queue
    assert loss_warning(_loss(145, 5, 5), "X") is None  # 3%: a hiccup, not a broken link
    assert loss_warning(_loss(2, 3, 3), "X") is None  # too few frames to judge
    assert loss_warning(_loss(0, 0, 0), "X") is None


def test_profile_hint_is_the_process_profile_else_the_packaged_one(monkeypatch) -> None:
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/robot/dds.xml")
    assert profile_hint() == "FASTDDS_DEFAULT_PROFILES_FILE=/robot/dds.xml"
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE")
    path = profile_hint().split("=", 1)[1]
    assert Path(path).is_file() and Path(path).name == PROFILE.name


# -- the node, a lossy camera over DDS --------------------------------------------------------

@pytest.fixture(scope="module")
def lossy_setup(make_checkpoint, tmp_path_factory):
    pytest.importorskip("rclpy", reason="the ROS 2 client library is not installed")
    from diagnostic_msgs.msg import DiagnosticArray

    from slimseg_ros.ros.client import NodeProcess, Probe, node_command

    checkpoint = make_checkpoint(input_size=(64, 96))
    # The node runs on the package's profile, as seg.launch.py starts it; the camera does not.
    env = dict(os.environ, OMP_NUM_THREADS="1", FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    cmd = node_command(params_file=ROOT / "config" / "slimseg.yaml", remaps=[f"image:={TOPIC}"],
                       params=[f"model_path:={checkpoint}", "backend:=torch", "target_fps:=30"])
    with Probe("/slimseg", labels_topic="/labels", labels_qos=50, keep_labels=None) as probe, \
            NodeProcess(cmd, tmp_path_factory.mktemp("node") / "node.log", env) as node:
        arrays = probe.collect(DiagnosticArray, "/diagnostics", 100)
        probe.wait_started(120.0, check_alive=node.problem)
        yield node, probe, arrays


def _statuses_while(arrays, run) -> tuple[list[tuple[float, int, str, dict[str, str]]], dict]:
    """``run()``'s result and the node's statuses while it ran: (seconds since its start,
    level, message, values)."""
    from slimseg_ros.ros.diagnostics import status_name

    start = time.monotonic()
    result = run()
    found = []
    for arrived, array in arrays.timed():
        for status in array.status:
            if arrived >= start and status.name == status_name("/slimseg"):
                found.append((arrived - start, int.from_bytes(status.level, "little")
                              if isinstance(status.level, bytes) else int(status.level),
                              status.message, {kv.key: kv.value for kv in status.values}))
    return found, result


@pytest.mark.dds
def test_a_stock_best_effort_camera_loses_frames_and_the_node_warns_within_10_s(
        lossy_setup, camera_process) -> None:
    node, probe, arrays = lossy_setup
    env = dict(os.environ)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # a stock camera driver's process
    found, report = _statuses_while(arrays, lambda: camera_process(
        "--size", "640x480", "--rate", "30", "--count", "360", "--reliability", "best_effort",
        "--topic", TOPIC, "--first-stamp", "6000000000", env=env))
    assert report["matched_subscriptions"] >= 1
    answered = len(report["answered"]) / len(report["sent"])
    warned = [(t, msg, v) for t, level, msg, v in found
              if level == 1 and "lost before the node" in msg]
    assert answered < 0.5, f"the camera lost no frames this time ({answered:.0%} answered)"
    assert warned, [m for _, _, m, _ in found]
    first, message, values = warned[0]
    assert first <= 10.0 + 1.0, f"first WARN {first:.1f} s after the camera started"
    assert "in DDS transport" in message
    assert f"FASTDDS_DEFAULT_PROFILES_FILE={PROFILE}" in message
    assert int(values["lost_in_transport_frames"]) > 0
    assert float(values["lost_fraction_recent"]) >= 0.5
    assert values["loss_signal"].startswith("event")  # "+sequence" once a frame got through
    if report["answered"]:
        assert found[-1][3]["loss_signal"] == "event+sequence"
    assert "lost before the node" in node.log_text()  # the log line, throttled
    # the node answered what did arrive (on a loaded machine nothing may get through at all)
    if report["answered"]:
        assert int(found[-1][3]["processed_frames"]) > 0


@pytest.mark.dds
def test_the_same_camera_on_the_package_profile_loses_nothing_and_no_warning(
        lossy_setup, camera_process) -> None:
    node, probe, arrays = lossy_setup
    # an earlier stream's loss must have left the window first
    assert probe.wait_status(lambda s: s.get("lost_fraction_recent") in ("nan", "0.000"), 30.0)
    before = int(probe.status()["lost_in_transport_frames"])
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    found, report = _statuses_while(arrays, lambda: camera_process(
        "--size", "640x480", "--rate", "30", "--count", "240", "--reliability", "best_effort",
        "--topic", TOPIC, "--first-stamp", "7000000000", env=env))
    answered = len(report["answered"]) / len(report["sent"])
    assert answered >= 0.95, f"{answered:.0%} answered"
    assert found and not [m for _, _, m, _ in found if "lost before the node" in m]
    assert int(found[-1][3]["lost_in_transport_frames"]) == before
