"""The node's parts that need no DDS: frame slot, QoS choice, parameter table, diagnostics."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from rclpy.qos import ReliabilityPolicy  # noqa: E402

from slimseg_ros.control import ControllerConfig  # noqa: E402
from slimseg_ros.ros import params as P  # noqa: E402
from slimseg_ros.ros.diagnostics import (  # noqa: E402
    DIAGNOSTIC_KEYS, DiagnosticsView, LatencyWindow, diagnostic_status)
from slimseg_ros.ros.frames import LatestSlot  # noqa: E402
from slimseg_ros.ros.qos import choose_reliability, input_qos, latched_qos  # noqa: E402
from slimseg_ros.runtime.backends import BACKEND_NAMES  # noqa: E402

R, B = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def test_slot_keeps_only_the_newest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None
    assert (slot.put_count, slot.dropped) == (3, 2)


def test_slot_wakes_a_waiting_taker_and_close_releases_it() -> None:
    slot: LatestSlot[str] = LatestSlot()
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=30)))
    taker.start()
    slot.put("frame")
    taker.join(30)
    assert got == ["frame"]
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=30)))
    waiter.start()
    slot.close()
    waiter.join(30)
    assert not waiter.is_alive() and got[-1] is None and slot.closed


@pytest.mark.parametrize("mode, publishers, expected", [
    ("auto", [], B),            # nobody yet: sensor-data QoS matches whatever comes
    ("auto", [R], R),
    ("auto", [R, R], R),
    ("auto", [R, B], B),        # a reliable subscription would not match the best-effort one
    ("auto", [B], B),
    ("reliable", [B], R),
    ("best_effort", [R], B),
])
def test_reliability_choice(mode, publishers, expected) -> None:
    policy, reason = choose_reliability(mode, publishers)
    assert policy == expected and reason


def test_reliability_choice_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="auto, best_effort, reliable"):
        choose_reliability("fast", [])


def test_qos_profiles() -> None:
    assert input_qos(R).depth == 1 and input_qos(B).reliability == B
    assert latched_qos().durability.name == "TRANSIENT_LOCAL"


def test_parameter_table_matches_the_contract() -> None:
    names = {s.name for s in P.NODE_PARAMETERS + P.CHECKPOINT_PARAMETERS}
    contract = {"model_path", "backend", "device", "precision", "input_size",
                "engine_cache_dir", "width", "adaptive", "target_fps", "min_width", "max_width",
                "battery_thresholds", "battery_widths", "battery_hysteresis", "min_dwell_s",
                "overrun_frames", "publish_color", "publish_overlay", "max_image_pixels",
                "class_names", "widths", "input_reliability", "input_transport",
                "input_sizes", "latency_table", "resolution"}
    assert contract <= names
    for name in ("model_path", "input_size", "input_sizes", "latency_table", "engine_cache_dir",
                 "class_names", "widths"):
        assert P.descriptor(P.spec(name)).read_only, name
    for s in P.NODE_PARAMETERS:
        assert s.description, s.name
    width = P.descriptor(P.spec("width"))
    assert not width.read_only
    assert (width.floating_point_range[0].from_value, width.floating_point_range[0].to_value) == (
        0.0, 1.0)
    assert P.descriptor(P.spec("overrun_frames")).integer_range[0].from_value == 1


@pytest.mark.parametrize("flat, size, expected", [
    ([0, 0], None, None),
    ([360, 480, 180, 240], None, [(360, 480), (180, 240)]),
    ([360, 480, 180, 240], (180, 240), [(180, 240), (360, 480)]),  # input_size comes first
])
def test_input_sizes_are_pairs_with_input_size_first(flat, size, expected) -> None:
    assert P.check_input_sizes(flat, size) == expected


@pytest.mark.parametrize("flat, size, words", [
    ([360, 480, 180], None, "pairs"), ([360, 480, 16, 240], None, ">= 32"),
    ([360, 480, 360, 480], None, "given twice"),
    ([360, 480], (180, 240), "input_size 180x240 is not one of input_sizes (360x480)"),
])
def test_bad_input_sizes_are_refused_in_words(flat, size, words) -> None:
    with pytest.raises(ValueError) as info:
        P.check_input_sizes(flat, size)
    assert words in str(info.value)


def test_controller_defaults_come_from_the_controller_config() -> None:
    defaults = ControllerConfig()
    for name in P.CONTROLLER_PARAMETERS:
        expected = getattr(defaults, name)
        value = P.spec(name).default
        assert (tuple(value) if isinstance(value, list) else value) == expected, name


def test_controller_config_from_parameters() -> None:
    base = ControllerConfig()
    cfg = P.controller_config({"target_fps": 30.0, "battery_thresholds": [0.4, 0.2],
                               "battery_widths": [0.5, 0.25], "publish_color": False}, base)
    assert cfg.target_fps == 30.0 and cfg.battery_thresholds == (0.4, 0.2)
    with pytest.raises(ValueError, match="strictly descending"):
        P.controller_config({"battery_thresholds": [0.2, 0.4, 0.1]}, base)
    with pytest.raises(ValueError, match="one width per threshold"):
        P.controller_config({"battery_thresholds": [0.4, 0.2]}, base)


def test_choice_and_size_checks() -> None:
    assert set(BACKEND_NAMES) | {"auto"} == set(P.backend_choices())
    with pytest.raises(ValueError, match="raw, compressed"):
        P.check_choice("input_transport", "theora", P.INPUT_TRANSPORTS)
    assert P.check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="cuda:N"):
        P.check_device("gpu")
    assert P.check_input_size([0, 0]) is None
    assert P.check_input_size([360, 480]) == (360, 480)
    with pytest.raises(ValueError, match=">= 32"):
        P.check_input_size([10, 480])


def test_latency_window_percentiles() -> None:
    window = LatencyWindow(size=100)
    assert window.percentiles_ms(50, 95) == (None, None)
    for i in range(1, 101):
        window.add(i / 1000)
    p50, p95 = window.percentiles_ms(50, 95)
    assert p50 == pytest.approx(50.5) and p95 == pytest.approx(95.05)


def _view(**changes) -> DiagnosticsView:
    values = dict(
        width=0.5, adaptive=True, backend="torch", device="cpu", precision="fp32",
        input_fps=30.0, output_fps=12.5, latency_ms=(40.0, 55.0), inference_ms=(35.0, 50.0),
        received=100, processed=40, dropped=58, rejected=2, rejected_by_kind={"size": 2},
        last_rejection="data has 3 bytes", failed=0, battery="battery at 40%", reason="why",
        switches=3, budget_ms=33.3, input_topic="/camera/image_raw",
        input_reliability="reliable", model="m.safetensors", input_size=(360, 480))
    values.update(changes)
    return DiagnosticsView(**values)


def test_diagnostic_status_has_the_contract_keys() -> None:
    level, message, pairs = diagnostic_status(_view())
    keys = [k for k, _ in pairs]
    assert keys[: len(DIAGNOSTIC_KEYS)] == list(DIAGNOSTIC_KEYS)
    values = dict(pairs)
    assert values["width"] == "0.5" and values["dropped_frames"] == "58"
    assert values["latency_p95_ms"] == "55.00" and values["input_fps"] == "30.00"
    assert level == "OK" and "0.5" in message


def test_diagnostic_status_warns_on_fresh_rejections_and_waits_for_input() -> None:
    level, message, _ = diagnostic_status(_view(rejected_recently=2))
    assert level == "WARN" and "data has 3 bytes" in message
    level, message, pairs = diagnostic_status(_view(received=0, input_fps=None))
    assert level == "OK" and "waiting" in message and dict(pairs)["input_fps"] == "nan"


def test_every_parameter_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "node.md").read_text()
    for s in P.NODE_PARAMETERS + P.CHECKPOINT_PARAMETERS:
        assert f"| `{s.name}` |" in doc, s.name
    for key in DIAGNOSTIC_KEYS:
        assert f"`{key}`" in doc, key


def test_the_node_status_is_read_by_its_contract_name() -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    from slimseg_ros.ros.diagnostics import status_name, status_values

    def status(name: str, hardware_id: str, width: str) -> DiagnosticStatus:
        return DiagnosticStatus(name=name, hardware_id=hardware_id,
                                values=[KeyValue(key="width", value=width)])

    array = DiagnosticArray(status=[
        status("camera: driver", "/camera", "x"),
        status("seg: segmentation", "/front/seg", "0.5"),
        status("slimseg: segmentation", "/slimseg", "1"),
    ])
    assert status_name("/slimseg") == status_name("slimseg") == "slimseg: segmentation"
    assert status_name("/front/seg") == "seg: segmentation"
    assert status_values(array, "/slimseg") == {"width": "1"}
    assert status_values(array, "front/seg") == {"width": "0.5"}
    assert status_values(array, "/rear/seg") is None  # same name, another node


def test_a_silent_best_effort_ghost_does_not_hold_the_input_qos() -> None:
    """A camera killed without a clean exit stays in the graph until its lease expires; its
    reliable replacement must get a reliable subscription long before that (defect 7), also
    when best effort lets a trickle of its frames through."""
    from slimseg_ros.ros.qos import InputQosChooser

    chooser = InputQosChooser(stale_after_s=2.0)
    ghost, camera = ("ghost", B), ("camera", R)
    assert chooser.choose("auto", [ghost], 0.0)[0] == B
    # the ghost's last frame came at 5 s; the replacement appears at 6 s and its frames
    # trickle in over best effort
    policy, _ = chooser.choose("auto", [ghost, camera], 6.0, B, subscribed_at=0.0,
                               heard={"ghost": 5.0, "camera": 6.0})
    assert policy == B  # silent for 1 s only: nothing is concluded yet
    policy, why = chooser.choose("auto", [ghost, camera], 7.1, B, subscribed_at=0.0,
                                 heard={"ghost": 5.0, "camera": 7.0})
    assert policy == R and "leaving out 1 best-effort publisher" in why
    # frames flow over the reliable subscription (made at 7.1); the ghost stays left out
    assert chooser.choose("auto", [ghost, camera], 30.0, R, subscribed_at=7.1,
                          heard={"camera": 29.9})[0] == R
    # the ghost's lease expires: nothing to leave out any more
    policy, why = chooser.choose("auto", [camera], 31.0, R, subscribed_at=7.1,
                                 heard={"camera": 31.0})
    assert policy == R and "leaving out" not in why


def test_a_best_effort_camera_that_delivers_keeps_best_effort() -> None:
    from slimseg_ros.ros.qos import InputQosChooser

    chooser = InputQosChooser(stale_after_s=2.0)
    pubs = [("small_frames_be", B), ("second_reliable", R)]
    for t in range(1, 10):
        policy, why = chooser.choose("auto", pubs, float(t), B, subscribed_at=0.0,
                                     heard={"small_frames_be": t - 0.1})
        assert policy == B and "leaving out" not in why


def test_a_left_out_publisher_is_tried_again_when_the_reliable_side_is_silent_too() -> None:
    from slimseg_ros.ros.qos import InputQosChooser

    chooser = InputQosChooser(stale_after_s=2.0, max_retry_s=8.0)
    pubs = [("paused_be_camera", B), ("idle_reliable", R)]
    assert chooser.choose("auto", pubs, 0.0)[0] == B
    assert chooser.choose("auto", pubs, 2.0, B, subscribed_at=0.0)[0] == R
    # nobody delivers over reliable either: re-match everyone after 4 s, then 8 s (no flapping)
    assert chooser.choose("auto", pubs, 5.0, R, subscribed_at=2.0)[0] == R
    assert chooser.choose("auto", pubs, 6.0, R, subscribed_at=2.0)[0] == B
    assert chooser.choose("auto", pubs, 8.0, B, subscribed_at=6.0)[0] == R
    assert chooser.choose("auto", pubs, 15.0, R, subscribed_at=8.0)[0] == R
    assert chooser.choose("auto", pubs, 16.0, R, subscribed_at=8.0)[0] == B
    # a forced mode ignores all that
    assert chooser.choose("best_effort", pubs, 17.0, B)[0] == B


def test_integers_become_the_doubles_a_parameter_is_declared_as() -> None:
    from rcl_interfaces.msg import ParameterType as T

    assert P.coerce("target_fps", T.PARAMETER_DOUBLE, T.PARAMETER_INTEGER, 30) == 30.0
    assert P.coerce("battery_widths", T.PARAMETER_DOUBLE_ARRAY, T.PARAMETER_INTEGER_ARRAY,
                    [1, 0]) == [1.0, 0.0]
    assert P.coerce("overrun_frames", T.PARAMETER_INTEGER, T.PARAMETER_INTEGER, 3) == 3
    with pytest.raises(ValueError, match=r"^overrun_frames takes an integer; got a number "
                                         r"\(double; 30 and 30.0 both work\) 2.5$"):
        P.coerce("overrun_frames", T.PARAMETER_INTEGER, T.PARAMETER_DOUBLE, 2.5)
    assert "did you mean max_width" in P.unknown_parameter("maxwidth", P.ALL_NAMES)


def test_managed_descriptors_let_start_up_parameters_change_while_unconfigured() -> None:
    plain, managed = P.descriptor(P.spec("model_path")), P.descriptor(P.spec("model_path"), True)
    assert plain.read_only and not managed.read_only
    assert "unconfigured" in managed.additional_constraints
    assert "checkpoint" in P.descriptor(P.spec("widths"), True).additional_constraints
    assert set(P.STARTUP_PARAMETERS) == {"model_path", "backend", "device", "precision",
                                         "input_size", "engine_cache_dir", "class_names",
                                         "widths", "input_sizes", "latency_table"}
