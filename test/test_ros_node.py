"""The slimseg node over real DDS, in this process: one node, driven like a robot would.

The node spins in a :class:`~slimseg_ros.ros.client.Probe`'s executor thread beside the probe's
own node; the test thread publishes images and battery states, sets parameters through the
SetParameters service (what ``ros2 param set`` calls) and waits, with deadlines, for what the
node publishes. Nothing here depends on how fast the machine is: the controller's frame-rate
rule is given a budget no frame misses (target_fps 0.1, a step down only after 1000 overruns).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import BatteryState, CompressedImage, Image  # noqa: E402

from slimseg_ros.data.pixels import image_to_rgb  # noqa: E402
from slimseg_ros.data.stamps import stamp_ns  # noqa: E402
from slimseg_ros.ros import qos  # noqa: E402
from slimseg_ros.ros.conversions import (  # noqa: E402
    blend, make_compressed, make_header, make_image)
from slimseg_ros.ros.diagnostics import DIAGNOSTIC_KEYS  # noqa: E402
from slimseg_ros.ros.client import Collector, Probe, wait_until  # noqa: E402
from slimseg_ros.ros.node import FrameTiming, SlimSegNode  # noqa: E402

pytestmark = pytest.mark.dds

DEADLINE = 30.0  # seconds; generous because a training job may share the 2 cores
WIDTHS = (0.25, 0.5, 0.75, 1.0)
LAX = {"target_fps": 0.1, "overrun_frames": 1000}  # no frame-rate pressure, whatever the load


@dataclass
class Env:
    node: SlimSegNode
    probe: Probe
    image_pub: object
    timings: dict[int, FrameTiming] = field(default_factory=dict)
    next_stamp: int = 1_000_000_000

    @property
    def labels(self) -> Collector:
        return self.probe.labels

    def stamp(self) -> int:
        self.next_stamp += 1_000_017
        return self.next_stamp

    def request(self, make_msg, publisher=None, collector=None, timeout: float = DEADLINE):
        """Publish ``make_msg(header)`` until the labels with its stamp arrive; those labels."""
        stamp = self.stamp()
        msg = make_msg(make_header(stamp, "camera_optical"))
        publisher = publisher or self.image_pub
        collector = collector or self.labels
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(msg)
            got = collector.wait_for_stamp(stamp, 0.5)
            if got is not None:
                # The worker reports a frame after everything for it was published.
                assert wait_until(lambda: stamp in self.timings, timeout)
                return msg, got
        pytest.fail(f"no answer for stamp {stamp} within {timeout:.0f} s")

    def set(self, **values) -> list[tuple[bool, str]]:
        """Set parameters through the service; (successful, reason) of each."""
        return self.probe.set_parameters(values, DEADLINE)

    def set_ok(self, **values) -> None:
        for successful, reason in self.set(**values):
            assert successful, reason


@pytest.fixture(scope="module")
def env(make_checkpoint):
    checkpoint = make_checkpoint(input_size=(64, 96))
    probe = Probe("/slimseg", labels_topic="labels", labels_qos=10)
    node = SlimSegNode(context=probe.context, parameter_overrides=[
        Parameter("backend", value="torch"),
        Parameter("model_path", value=str(checkpoint)),
        *(Parameter(name, value=value) for name, value in LAX.items()),
    ])
    probe.add_node(node)
    e = Env(node=node, probe=probe, image_pub=probe.publisher(Image, "image", 10))
    node.frame_observer = lambda t: e.timings.__setitem__(t.stamp_ns, t)
    probe.wait_started(DEADLINE * 4)  # engines load in a thread; ~/width says they are ready
    yield e
    probe.close()  # stops the node too


def _rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _labels(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


@pytest.mark.parametrize("encoding", [
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "yuv422_yuy2"])
def test_every_encoding_gets_labels_with_its_header_and_size(env: Env, encoding: str) -> None:
    rgb = _rgb(48, 62, seed=3)
    sent, labels = env.request(lambda header: make_image(rgb, encoding, header))
    assert labels.header.stamp == sent.header.stamp
    assert labels.header.frame_id == "camera_optical"
    assert (labels.height, labels.width, labels.encoding, labels.step) == (48, 62, "mono8", 62)
    # The labels are the runtime's for what the node saw, at the width it used for this frame.
    timing = env.timings[stamp_ns(sent.header)]
    seen = image_to_rgb(sent.encoding, sent.height, sent.width, sent.step, sent.data,
                        bool(sent.is_bigendian))
    np.testing.assert_array_equal(_labels(labels), env.node.engine.infer(seen, timing.width))


def test_compressed_input(env: Env) -> None:
    env.set_ok(input_transport="compressed")
    try:
        pub = env.probe.publisher(CompressedImage, "image/compressed", 10)
        for fmt in ("jpeg", "png"):
            rgb = _rgb(40, 56, seed=1)
            sent, labels = env.request(lambda h: make_compressed(rgb, fmt, h), publisher=pub)
            assert labels.header == sent.header
            assert (labels.height, labels.width) == (40, 56)
        before = env.node.stats.rejected_by_kind.get("decode", 0)
        garbage = CompressedImage(header=make_header(5), format="jpeg", data=b"\xff\xd8garbage")

        def rejected() -> bool:  # sent again if a copy is lost on the way
            pub.publish(garbage)
            return env.node.stats.rejected_by_kind.get("decode", 0) > before
        assert wait_until(rejected, DEADLINE, interval=0.2)
        env.request(lambda h: make_compressed(_rgb(40, 56), "png", h), publisher=pub)
        env.probe.node.destroy_publisher(pub)
    finally:
        env.set_ok(input_transport="raw")


def test_width_parameter_pins_and_rejects_unknown_widths(env: Env) -> None:
    env.set_ok(adaptive=True)
    (ok, reason), = env.set(width=0.25)
    assert ok, reason
    assert env.probe.wait_width(0.25, DEADLINE)
    assert wait_until(lambda: env.node.get_parameter("adaptive").value is False, DEADLINE)
    sent, _ = env.request(lambda h: make_image(_rgb(), "rgb8", h))
    assert env.timings[stamp_ns(sent.header)].width == 0.25  # used from the next frame

    (ok, reason), = env.set(width=0.3)
    assert not ok
    assert "0.25, 0.5, 0.75, 1" in reason
    assert env.node.controller.width == 0.25
    assert env.node.get_parameter("width").value == 0.25
    sent, _ = env.request(lambda h: make_image(_rgb(), "rgb8", h))
    assert env.timings[stamp_ns(sent.header)].width == 0.25

    (ok, reason), = env.set(width=2.0)  # outside the descriptor's range: rclpy says so
    assert not ok and reason

    env.set_ok(width=0.75)
    assert env.probe.wait_width(0.75, DEADLINE)
    env.set_ok(adaptive=True)
    assert env.node.controller.adaptive
    assert env.node.get_parameter("adaptive").value is True


def test_controller_parameters_are_validated(env: Env) -> None:
    before = env.node.controller.config
    cases = {
        "battery_thresholds": ([0.2, 0.4, 0.1], "strictly descending"),
        "battery_widths": ([0.5, 0.75, 0.25], "do not increase"),
        "max_width": (0.1, "no model width lies in"),
        "target_fps": (0.0, ""),          # below the descriptor's range
        "overrun_frames": (0, ""),
        "model_path": ("/elsewhere.safetensors", ""),  # read-only
        "input_reliability": ("fast", "auto, best_effort, reliable"),
    }
    for name, (value, words) in cases.items():
        (ok, reason), = env.set(**{name: value})
        assert not ok, name
        assert reason and words in reason, (name, reason)
    assert env.node.controller.config == before
    env.set_ok(target_fps=30.0, overrun_frames=5)
    assert env.node.controller.config.target_fps == 30.0
    assert env.node.controller.config.overrun_frames == 5
    env.set_ok(**LAX)


def test_width_follows_the_battery_while_adaptive(env: Env) -> None:
    env.set_ok(adaptive=True, min_dwell_s=0.0)
    battery = env.probe.publisher(BatteryState, "battery_state", qos.battery_qos())
    frames_stop = threading.Event()

    def camera() -> None:  # frames keep flowing, as on a robot
        rgb = _rgb()
        while not frames_stop.is_set():
            env.image_pub.publish(make_image(rgb, "rgb8", make_header(env.stamp())))
            frames_stop.wait(0.1)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        def drain_to(percentage: float, status: int, width: float) -> None:
            msg = BatteryState(percentage=percentage, power_supply_status=status)
            got = wait_until(lambda: battery.publish(msg) or env.probe.wait_width(width, 0.2),
                             DEADLINE)
            assert got, f"~/width never became {width} at battery {percentage}"
            assert wait_until(lambda: env.node.get_parameter("width").value == width, DEADLINE)

        assert env.probe.wait_width(1.0, DEADLINE)  # headroom: adaptive goes widest first
        discharging = BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
        drain_to(0.45, discharging, 0.75)   # below 0.5: cap 0.75
        drain_to(0.2, discharging, 0.5)     # below 0.3: cap 0.5
        drain_to(0.1, discharging, 0.25)    # below 0.15: cap 0.25
        drain_to(0.1, BatteryState.POWER_SUPPLY_STATUS_CHARGING, 1.0)  # charging lifts caps
        assert env.node.get_parameter("adaptive").value is True
    finally:
        frames_stop.set()
        feeder.join(10)
        env.probe.node.destroy_publisher(battery)
        env.set_ok(min_dwell_s=3.0)


def test_diagnostics_carry_the_contract_keys(env: Env) -> None:
    env.request(lambda h: make_image(_rgb(), "rgb8", h))
    values = env.probe.wait_status(lambda s: int(s["processed_frames"]) > 0, DEADLINE)
    assert values is not None
    assert set(DIAGNOSTIC_KEYS) <= set(values)
    assert float(values["width"]) in WIDTHS
    assert values["backend"] == env.node.engine.backend and values["device"] == "cpu"
    assert float(values["latency_p50_ms"]) > 0
    assert values["adaptive"] in ("true", "false")


def test_malformed_images_are_counted_while_good_frames_are_answered(env: Env) -> None:
    env.set_ok(max_image_pixels=48 * 64)
    try:
        def bad(encoding: str, h: int, w: int, step: int, data: bytes) -> Image:
            return Image(header=make_header(env.stamp()), height=h, width=w, encoding=encoding,
                         step=step, data=data)

        cases = {
            "size": bad("rgb8", 48, 64, 192, bytes(192 * 48 - 5)),          # short data
            "encoding": bad("bayer_grbg8", 48, 64, 64, bytes(64 * 48)),
            "empty": bad("rgb8", 0, 0, 0, b""),
            "too_large": make_image(_rgb(64, 64), "rgb8", make_header(env.stamp())),
        }
        wrong_step = bad("rgb8", 48, 64, 100, bytes(100 * 48))
        for kind, msg in list(cases.items()) + [("size", wrong_step)]:
            count = env.node.stats.rejected_by_kind.get(kind, 0)
            got = wait_until(lambda: env.image_pub.publish(msg) or wait_until(
                lambda: env.node.stats.rejected_by_kind.get(kind, 0) > count, 0.5), DEADLINE)
            assert got, f"{kind} image was not counted"
            env.request(lambda h: make_image(_rgb(), "bgr8", h))  # and the node still answers
        rejected = env.node.stats.rejected
        assert env.probe.wait_status(lambda s: int(s["rejected_frames"]) >= rejected, DEADLINE)
    finally:
        env.set_ok(max_image_pixels=3840 * 2160)


def test_latest_frame_wins_and_every_frame_is_accounted_for(env: Env) -> None:
    env.request(lambda h: make_image(_rgb(), "rgb8", h))
    rgb = _rgb(seed=9)
    stamps = [env.stamp() for _ in range(30)]
    for s in stamps:
        env.image_pub.publish(make_image(rgb, "rgb8", make_header(s)))
    assert env.labels.wait_for_stamp(stamps[-1], DEADLINE) is not None
    answered = [s for _, s, _ in env.labels.stamped() if s in stamps]
    assert answered == sorted(answered)  # never an older frame after a newer one

    def balanced() -> bool:
        s = env.node.stats
        with s.lock:
            done = s.processed + s.rejected + s.failed
        return env.node._slot.put_count == done + env.node._slot.dropped
    assert wait_until(balanced, DEADLINE)


def test_colour_and_overlay_only_while_subscribed(env: Env, monkeypatch) -> None:
    published = {"labels_color": 0, "overlay": 0}
    for name, pub in (("labels_color", env.node._outputs["labels_color"]),
                      ("overlay", env.node._outputs["overlay"])):
        original = pub.publish

        def counting(msg, name=name, original=original):
            published[name] += 1
            original(msg)
        monkeypatch.setattr(pub, "publish", counting)

    env.request(lambda h: make_image(_rgb(), "rgb8", h))
    assert published == {"labels_color": 0, "overlay": 0}

    colour = env.probe.collect(Image, "labels_color")
    overlay = env.probe.collect(Image, "overlay")
    try:
        assert wait_until(lambda: env.node._outputs["labels_color"].get_subscription_count() > 0
                          and env.node._outputs["overlay"].get_subscription_count() > 0, DEADLINE)
        rgb = _rgb(seed=4)
        sent, labels = env.request(lambda h: make_image(rgb, "rgb8", h), collector=overlay)
        stamp = stamp_ns(sent.header)
        labels = env.labels.wait_for_stamp(stamp, DEADLINE)
        colour_msg = colour.wait_for_stamp(stamp, DEADLINE)
        assert colour_msg.header == sent.header and colour_msg.encoding == "rgb8"
        expected = env.node._palette[_labels(labels)]
        got = np.frombuffer(colour_msg.data, np.uint8).reshape(48, 64, 3)
        np.testing.assert_array_equal(got, expected)
        mixed = np.frombuffer(overlay.wait_for_stamp(stamp, 1).data, np.uint8).reshape(48, 64, 3)
        np.testing.assert_array_equal(mixed, blend(rgb, expected, 0.5))

        env.set_ok(publish_color=False)
        count = published["labels_color"]
        env.request(lambda h: make_image(rgb, "rgb8", h), collector=overlay)
        assert published["labels_color"] == count
    finally:
        env.set_ok(publish_color=True)
        env.probe.node.destroy_subscription(colour.subscription)
        env.probe.node.destroy_subscription(overlay.subscription)


def _other_node(env: Env, name: str, cli: list[str] | None = None, **params) -> SlimSegNode:
    """A second node on the same engine (no model loading), same context."""
    return SlimSegNode(name, context=env.node.context, engine=env.node.engine,
                       cli_args=["--ros-args", *(cli or [])],
                       parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def test_compressed_topic_follows_the_image_remapping(env: Env) -> None:
    node = _other_node(env, "slimseg_remap", ["-r", "image:=/cam/raw"],
                       input_transport="compressed")
    try:
        assert node.input_topic() == "/cam/raw/compressed"
        assert env.probe.node.get_publishers_info_by_topic("/cam/raw/compressed") == []
        assert wait_until(lambda: env.probe.node.get_subscriptions_info_by_topic(
            "/cam/raw/compressed"), DEADLINE)
    finally:
        node.destroy_node()
    node = _other_node(env, "slimseg_remap2", ["-r", "image:=/cam/raw",
                                                "-r", "image/compressed:=/cam/jpeg"],
                       input_transport="compressed")
    try:
        assert node.input_topic() == "/cam/jpeg"
    finally:
        node.destroy_node()


@pytest.mark.parametrize("params, words", [
    ({"adaptive": False, "width": 0.3}, "0.25, 0.5, 0.75, 1"),
    ({"input_size": [10, 10]}, "input_size"),
    ({"battery_thresholds": [0.1, 0.2]}, "strictly descending"),
    ({"input_transport": "theora"}, "raw, compressed"),
    ({"target_fps": -1.0}, "target_fps"),
])
def test_bad_start_parameters_stop_the_node_with_a_reason(env: Env, params, words) -> None:
    from slimseg_ros.ros.node import StartupError

    with pytest.raises(StartupError, match=words.replace(".", r"\.")):
        _other_node(env, "slimseg_bad", **params)


def test_pinned_start_uses_the_given_width(env: Env) -> None:
    node = _other_node(env, "slimseg_pinned", adaptive=False, width=0.5)
    try:
        assert node.controller.width == 0.5 and not node.controller.adaptive
        assert node.get_parameter("width").value == 0.5
    finally:
        node.destroy_node()


# -- what issue 15 found: types, messages, limits, logs ------------------------------------------

def test_integers_are_taken_for_doubles(env: Env) -> None:
    """`ros2 param set /slimseg width 1` sends an integer; every ROS user writes `30`."""
    (ok, reason), = env.set(width=1)  # Probe sends Python ints as INTEGER, like ros2 param set
    assert ok, reason
    assert env.probe.wait_width(1.0, DEADLINE)
    (ok, reason), = env.set(target_fps=30)
    assert ok, reason
    assert env.node.controller.config.target_fps == 30.0
    assert env.node.get_parameter("target_fps").type_ == Parameter.Type.DOUBLE
    env.set_ok(adaptive=True, **LAX)
    # at start: a parameter file, -p and parameter_overrides alike
    node = _other_node(env, "slimseg_ints", ["-p", "min_dwell_s:=3"], target_fps=30)
    try:
        assert node.get_parameter("target_fps").value == 30.0
        assert node.get_parameter("min_dwell_s").value == 3.0
        assert node.controller.config.target_fps == 30.0
    finally:
        node.destroy_node()


def test_values_a_user_cannot_act_on_are_answered_in_words(env: Env) -> None:
    (ok, reason), = env.set(target_fps="fast")
    assert not ok and reason == ("target_fps takes a number (double; 30 and 30.0 both work); "
                                 "got a string 'fast'")
    (ok, reason), = env.set(target_fsp=30.0)
    assert not ok and "has no parameter 'target_fsp'; did you mean target_fps?" in reason
    (ok, reason), = env.set(adaptive="yes")
    assert not ok and reason.startswith("adaptive takes a boolean")


def test_a_directory_as_model_path_is_named_a_directory(env: Env, tmp_path) -> None:
    from slimseg_ros.ros.node import StartupError

    (tmp_path / "mine.safetensors").write_bytes(b"")
    with pytest.raises(StartupError, match=r"is a directory, not a checkpoint file; give the "
                                           r"\.safetensors file itself \(it holds "
                                           r"mine\.safetensors\)"):
        SlimSegNode("slimseg_dir", context=env.node.context,
                    parameter_overrides=[Parameter("model_path", value=str(tmp_path))])


def test_a_pin_must_lie_within_min_and_max_width(env: Env) -> None:
    """max_width means never wider, pins included (the docs and the node agree)."""
    env.set_ok(width=1.0)
    env.set_ok(max_width=0.75)  # the held width follows at once, no frame needed
    assert env.probe.wait_width(0.75, DEADLINE)
    assert wait_until(lambda: env.node.get_parameter("width").value == 0.75, DEADLINE)
    (ok, reason), = env.set(width=1.0)
    assert not ok and reason.startswith("width 1 is outside [min_width, max_width] = [0, 0.75]")
    env.set_ok(max_width=1.0, width=0.25)
    env.set_ok(min_width=0.5)
    assert env.probe.wait_width(0.5, DEADLINE)
    env.set_ok(min_width=0.0, adaptive=True)


def test_min_width_above_the_width_in_use_applies_at_once_while_adaptive(env: Env) -> None:
    env.set_ok(width=0.25)
    env.set_ok(adaptive=True)
    assert env.node.controller.width == 0.25
    env.set_ok(min_width=0.75)  # no frame is sent: the set itself moves the width
    assert env.probe.wait_width(0.75, DEADLINE)
    env.set_ok(min_width=0.0)


def test_resuming_adaptive_is_logged(env: Env, capfd) -> None:
    env.set_ok(adaptive=False)
    env.set_ok(adaptive=True)
    err = capfd.readouterr().err
    assert "adaptive off: holding width" in err and "adaptive on: adapting from width" in err


def test_decoder_noise_goes_through_the_throttled_log(env: Env, capfd) -> None:
    """libpng wrote one stderr line per bad PNG, past the node's 5 s warning throttle."""
    env.set_ok(input_transport="compressed")
    pub = env.probe.publisher(CompressedImage, "image/compressed", 10)
    try:
        # the node's compressed subscription is new: publish only once it has matched
        assert wait_until(lambda: pub.get_subscription_count() > 0, DEADLINE)
        png = bytearray(make_compressed(_rgb(), "png", make_header(1)).data)
        png[len(png) // 2] ^= 0xFF  # a bad IDAT checksum: libpng complains
        before = env.node.stats.rejected_by_kind.get("decode", 0)
        started = time.monotonic()
        for i in range(10):
            def rejected(i: int = i) -> bool:  # sent again if a copy is lost on the way
                pub.publish(CompressedImage(header=make_header(env.stamp()), format="png",
                                            data=bytes(png)))
                return env.node.stats.rejected_by_kind.get("decode", 0) > before + i
            assert wait_until(rejected, DEADLINE, interval=0.2)
        assert "libpng" in env.node.stats.last_rejection  # the decoder's words, kept
        err = capfd.readouterr().err.splitlines()
        assert not [line for line in err if line.startswith("libpng")]  # never raw
        warned = [line for line in err if "libpng" in line]
        # throttled (one line per 5 s at most), not one line per message, however slow the run
        assert len(warned) <= 1 + (time.monotonic() - started) // 5
        env.probe.node.destroy_publisher(pub)
    finally:
        env.set_ok(input_transport="raw")


def test_a_silent_best_effort_publisher_does_not_hold_the_input_qos(env: Env) -> None:
    """A crashed camera stays in the graph until its lease expires (~20 s): it must not keep a
    working reliable camera (env.image_pub) on best effort meanwhile."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    ghost = env.probe.publisher(Image, "image", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))  # never publishes
    try:
        assert env.probe.wait_status(
            lambda s: s["input_reliability"].startswith("best_effort"), DEADLINE)

        def reliable_again(status: dict) -> bool:
            env.request(lambda h: make_image(_rgb(), "rgb8", h))  # the camera keeps sending
            return (status["input_reliability"].startswith("reliable")
                    and "leaving out 1 best-effort publisher" in status["input_reliability"])
        assert env.probe.wait_status(reliable_again, DEADLINE * 2)
        env.request(lambda h: make_image(_rgb(), "rgb8", h))
    finally:
        env.probe.node.destroy_publisher(ghost)
    assert env.probe.wait_status(lambda s: s["input_reliability"].startswith("reliable")
                                 and "leaving out" not in s["input_reliability"], DEADLINE)
