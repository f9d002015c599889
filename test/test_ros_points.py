"""The node with several input sizes (operating points), over real DDS: labels at camera size from
the point in use, `resolution` and `width` pins, `adaptive true`, `~/operating_point`,
/diagnostics, and latency tables accepted or refused."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from slimseg_ros.data.pixels import image_to_rgb  # noqa: E402
from slimseg_ros.ros.conversions import make_header, make_image  # noqa: E402
from slimseg_ros.ros.diagnostics import DIAGNOSTIC_POINT_KEYS  # noqa: E402
from slimseg_ros.ros.client import Probe, wait_until  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode  # noqa: E402
from slimseg_ros.ros.qos import latched_qos  # noqa: E402
from slimseg_ros.runtime.cache import file_sha256  # noqa: E402
from slimseg_ros.runtime.latency_table import TABLE_FORMAT, device_key  # noqa: E402
from slimseg_ros.runtime.points import point_key  # noqa: E402

pytestmark = pytest.mark.dds

DEADLINE = 30.0
LAX = {"target_fps": 0.1, "overrun_frames": 1000}
SIZES = [64, 96, 32, 48]


@pytest.fixture(scope="module")
def env(make_checkpoint, tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("points") / "model.safetensors"
    shutil.copy(make_checkpoint(input_size=(64, 96)), checkpoint)
    probe = Probe("/slimseg_points", labels_topic="/slimseg_points_labels", labels_qos=10)
    node = SlimSegNode("slimseg_points", context=probe.context, cli_args=[
        "--ros-args", "-r", "labels:=/slimseg_points_labels", "-r", "image:=/points_image"],
        parameter_overrides=[
            Parameter("backend", value="torch"), Parameter("model_path", value=str(checkpoint)),
            Parameter("input_sizes", value=SIZES),
            *(Parameter(k, value=v) for k, v in LAX.items())])
    probe.add_node(node)
    timings = {}
    node.frame_observer = lambda t: timings.__setitem__(t.stamp_ns, t)
    points = probe.collect(String, "/slimseg_points/operating_point", latched_qos())
    probe.wait_started(DEADLINE * 4)
    pub = probe.publisher(Image, "/points_image", 10)
    yield {"node": node, "probe": probe, "timings": timings, "points": points, "pub": pub,
           "checkpoint": checkpoint}
    probe.close()


def _request(env, rgb, stamp):
    msg = make_image(rgb, "rgb8", make_header(stamp, "cam"))
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        env["pub"].publish(msg)
        got = env["probe"].labels.wait_for_stamp(stamp, 0.5)
        if got is not None:
            assert wait_until(lambda: stamp in env["timings"], DEADLINE)
            return msg, got, env["timings"][stamp]
    pytest.fail(f"no answer for stamp {stamp}")


def _set(env, **values):
    return env["probe"].set_parameters(values, DEADLINE)


def test_labels_come_at_camera_size_from_the_point_in_use(env) -> None:
    node = env["node"]
    assert node.engine.sizes == ((64, 96), (32, 48)) and len(node.engine.points) == 8
    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    sent, labels, timing = _request(env, rgb, 2_000_000_001)
    assert (labels.height, labels.width) == (50, 70)
    assert timing.network_size in ((64, 96), (32, 48))
    seen = image_to_rgb(sent.encoding, sent.height, sent.width, sent.step, sent.data, False)
    got = np.frombuffer(labels.data, np.uint8).reshape(50, 70)
    np.testing.assert_array_equal(got, node.engine.infer(seen, timing.width, timing.network_size))


def test_resolution_pins_the_size_width_pins_the_width_adaptive_resumes(env) -> None:
    node, probe = env["node"], env["probe"]
    (ok, reason), = _set(env, resolution=[32, 48])
    assert ok, reason
    assert node.controller.pinned_size == (32, 48) and not node.controller.adaptive
    rgb = np.zeros((64, 96, 3), np.uint8)
    _, _, timing = _request(env, rgb, 2_000_000_101)
    assert timing.network_size == (32, 48)
    assert wait_until(lambda: probe.get_parameters(["adaptive"])["adaptive"] is False, DEADLINE)
    msg = env["points"].wait_for(lambda m: json.loads(m.data)["input_size"] == [32, 48],
                                 DEADLINE)
    assert msg is not None and "resolution" in json.loads(msg.data)["pinned"]

    (ok, reason), = _set(env, width=0.5)
    assert ok, reason
    assert node.controller.point == (0.5, (32, 48))      # both held now
    _, _, timing = _request(env, rgb, 2_000_000_201)
    assert (timing.width, timing.network_size) == (0.5, (32, 48))

    (ok, reason), = _set(env, resolution=[100, 100])
    assert not ok and "resolution 100x100 is not one of the input sizes (64x96, 32x48)" in reason
    assert node.controller.point == (0.5, (32, 48))      # a refused set changes nothing

    (ok, reason), = _set(env, adaptive=True)
    assert ok, reason
    assert node.controller.adaptive and node.controller.pinned_size is None
    # LAX budget: adaptive goes to the most accurate point at once or after the dwell
    assert wait_until(lambda: (_request(env, rgb, 2_000_000_300 + int(time.monotonic() * 1e3))
                               and node.controller.point == (1.0, (64, 96))), DEADLINE)
    params = probe.get_parameters(["width", "resolution"])
    assert wait_until(lambda: list(probe.get_parameters(["resolution"])["resolution"]) == [64, 96],
                      DEADLINE), params


def test_diagnostics_show_the_point_and_where_its_numbers_come_from(env) -> None:
    values = env["probe"].wait_status(
        lambda s: s.get("operating_point") is not None and s.get("state") == "running", DEADLINE)
    assert values is not None
    assert set(DIAGNOSTIC_POINT_KEYS) <= set(values)
    assert values["latency_source"] == "start-up profile"
    assert values["accuracy_source"] == "GFLOPs (no accuracy table)"
    assert "@" in values["operating_point"] and "@64x96" in values["front"]


def _table(node, checkpoint, **change):
    key = {**device_key(node.engine, file_sha256(checkpoint)), **change}
    return {"format": TABLE_FORMAT, "key": key,
            "points": {point_key(p.width, p.size): {"p50_ms": 5.0 + 10 * p.width}
                       for p in node.engine.points}}


@pytest.mark.parametrize("change, source", [
    ({}, "latency table"), ({"threads": 99}, "start-up profile")])
def test_a_latency_table_seeds_the_controller_only_where_it_was_measured(
        env, tmp_path, change, source) -> None:
    path = tmp_path / "table.json"
    path.write_text(json.dumps(_table(env["node"], env["checkpoint"], **change)))
    node = SlimSegNode(f"slimseg_table_{len(change)}", context=env["node"].context,
                       parameter_overrides=[
                           Parameter("backend", value="torch"),
                           Parameter("model_path", value=str(env["checkpoint"])),
                           Parameter("input_sizes", value=SIZES),
                           Parameter("latency_table", value=str(path))])
    try:
        assert wait_until(lambda: node.controller is not None, DEADLINE * 4)
        assert node._latency_source.startswith(source)
        if not change:  # the table's numbers, not the warm-up's
            predicted = node.controller.status(time.monotonic()).predicted_s
            assert predicted[(0.5, (32, 48))] == pytest.approx(0.010)
    finally:
        node.close()
        node.destroy_node()


def test_agreement_with_the_most_accurate_point_is_published_in_idle_time(env) -> None:
    from std_msgs.msg import Float32

    from slimseg_ros.eval.metrics import label_agreement

    node, probe = env["node"], env["probe"]
    agreement = probe.collect(Float32, "/slimseg_points/agreement", 10)
    assert node._agreement.reference == (1.0, (64, 96))  # GFLOPs stand in for accuracy here
    for ok, reason in _set(env, resolution=[32, 48], agreement_period_s=0.01):
        assert ok, reason
    try:
        rgb = np.random.default_rng(7).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        sent, labels, timing = _request(env, rgb, 2_000_000_901)
        assert timing.network_size == (32, 48)
        msg = agreement.wait_for(lambda m: True, DEADLINE)
        assert msg is not None
        seen = image_to_rgb(sent.encoding, sent.height, sent.width, sent.step, sent.data, False)
        expected = label_agreement(node.engine.infer(seen, timing.width, (32, 48)),
                                   node.engine.infer(seen, 1.0, (64, 96)), 11)
        assert msg.data == pytest.approx(expected, abs=1e-6)
        values = probe.wait_status(lambda s: s.get("agreement", "nan") != "nan", DEADLINE)
        assert values is not None and values["agreement_reference"] == "1@64x96"
    finally:
        _set(env, agreement_period_s=10.0, adaptive=True)
