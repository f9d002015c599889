"""Operating points in the runtime: one engine per (width, input size), labels at camera size."""

from __future__ import annotations

import numpy as np
import pytest

from slimseg_ros.model import ModelConfig
from slimseg_ros.runtime import OperatingPoint, load_engine, load_point_engine
from slimseg_ros.runtime.points import parse_point_key, point_key

CONFIG = ModelConfig(num_classes=5, head_channels=32)
SIZES = [(64, 96), (48, 64), (32, 48)]


@pytest.fixture(scope="module")
def engine(make_checkpoint):
    path = make_checkpoint(CONFIG, input_size=(64, 96))
    return load_point_engine(path, input_sizes=SIZES, backend="torch", device="cpu",
                             warmup_repeats=1)


def test_every_width_and_size_is_a_point_with_a_warm_up_latency(engine) -> None:
    assert engine.sizes == ((64, 96), (48, 64), (32, 48))
    assert len(engine.points) == 3 * len(engine.widths)
    assert set(engine.point_latency_s) == set(engine.points)
    assert all(t > 0 for t in engine.point_latency_s.values())
    for size in SIZES:
        assert engine.engine(size).input_size == size


@pytest.mark.parametrize("camera", [(64, 96), (100, 130), (20, 33)])
def test_labels_come_at_the_camera_resolution_at_every_point(engine, camera) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*camera, 3), dtype=np.uint8)
    for point in engine.points:
        labels = engine.infer(image, point.width, point.size)
        assert labels.shape == camera and labels.dtype == np.uint8
        assert labels.max() < CONFIG.num_classes


def test_each_size_computes_at_its_own_resolution(engine, make_checkpoint) -> None:
    # The (w, 48x64) point equals a single-size engine built at 48x64: the size is really used.
    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    single = load_engine(make_checkpoint(CONFIG, input_size=(64, 96)), backend="torch",
                         device="cpu", input_size=(48, 64), warmup_repeats=1)
    w = engine.widths[-1]
    np.testing.assert_array_equal(engine.infer(image, w, (48, 64)), single.infer(image, w))
    assert not np.array_equal(engine.infer(image, w, (32, 48)), engine.infer(image, w, (64, 96)))


def test_the_single_size_interface_answers_at_the_first_size(engine) -> None:
    image = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert engine.input_size == (64, 96)
    w = engine.widths[0]
    np.testing.assert_array_equal(engine.infer(image, w), engine.infer(image, w, (64, 96)))
    assert set(engine.latency_s) == set(engine.widths)


def test_one_size_is_todays_engine(make_checkpoint) -> None:
    path = make_checkpoint(CONFIG, input_size=(64, 96))
    points = load_point_engine(path, backend="torch", device="cpu", warmup_repeats=1)
    assert points.sizes == ((64, 96),) and points.input_size == (64, 96)


def test_an_unknown_size_is_refused_naming_the_sizes(engine) -> None:
    image = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(ValueError, match=r"100x100 is not one of .*64x96, 48x64, 32x48"):
        engine.infer(image, 1.0, (100, 100))


def test_network_input_sizes_below_the_encoder_stride_are_refused(make_checkpoint) -> None:
    path = make_checkpoint(CONFIG, input_size=(64, 96))
    with pytest.raises(ValueError, match="at least 32x32"):
        load_point_engine(path, input_sizes="64x96,16x16", backend="torch", device="cpu")


def test_point_keys_round_trip() -> None:
    assert point_key(0.5, (270, 360)) == "0.5@270x360"
    assert parse_point_key("0.5@270x360") == OperatingPoint(0.5, (270, 360))
    with pytest.raises(ValueError, match="WIDTH@HxW"):
        parse_point_key("0.5")


def test_gflops_grow_with_width_and_pixels(engine) -> None:
    g = engine.point_gflops()
    assert set(g) == set(engine.points)
    w = engine.widths
    for size in SIZES:
        assert [g[OperatingPoint(x, size)] for x in w] == sorted(g[OperatingPoint(x, size)]
                                                                for x in w)
    assert g[OperatingPoint(w[-1], (32, 48))] == pytest.approx(
        g[OperatingPoint(w[-1], (64, 96))] / 4)
