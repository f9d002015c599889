"""Rosbag2 writing and reading (rosbags, no ROS): round trips, encodings, topics, stamps."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from slimseg_ros.data import bagread
from slimseg_ros.eval import bagio
from slimseg_ros.data.msgcodec import (
    BATTERY_TYPE, IMAGE_TYPE, cdr_stamp_ns, decode_image, decode_labels, make_image,
    restamp_cdr, typestore_for)

H, W = 24, 32


def _frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        labels = rng.integers(0, 11, (H, W), dtype=np.uint8)
        labels[0, :3] = 255  # ignore pixels survive the trip
        out.append((rng.integers(0, 256, (H, W, 3), dtype=np.uint8), labels))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_keeps_pixels_labels_and_stamps(tmp_path, storage):
    frames = _frames(7)
    info = bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10, n_frames=7,
                                  storage=storage, battery=(1.0, 0.1))
    assert info.storage == storage
    assert info.topics["/camera/image_raw"] == (IMAGE_TYPE, 7)
    assert info.topics["/camera/labels"] == (IMAGE_TYPE, 7)
    assert info.topics["/camera/camera_info"][1] == 7
    assert info.duration_ns == 600_000_000
    topics = bagread.resolve_topics(info)
    got = list(bagread.iter_labelled_frames(info.path, topics))
    assert len(got) == 7
    for i, (frame, (rgb, labels)) in enumerate(zip(got, frames)):
        assert frame.stamp_ns == bagio.DEFAULT_START_NS + i * 100_000_000
        np.testing.assert_array_equal(frame.rgb, rgb)
        np.testing.assert_array_equal(frame.labels, labels)
    # what `ros2 bag` reads: metadata version 8 (Humble and Jazzy), and for every topic a QoS
    # list with numeric policies (how Humble's player parses it; an empty string would fail)
    meta = yaml.safe_load((info.path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == storage
    for topic in meta["topics_with_message_count"]:
        profiles = yaml.safe_load(topic["topic_metadata"]["offered_qos_profiles"])
        assert isinstance(profiles, list) and profiles[0]["reliability"] == 1
    with Reader(info.path) as reader:
        assert {c.topic for c in reader.connections} == set(info.topics)


def test_battery_drains_linearly_from_first_to_last_frame(tmp_path):
    info = bagio.write_frames_bag(tmp_path / "bag", _frames(12), rate_hz=10, n_frames=12,
                                  battery=(0.9, 0.2))
    store = typestore_for("humble")
    msgs = list(bagread.iter_messages(info.path, ["/battery_state"]))
    times = [(m.log_ns - info.start_ns) / 1e9 for m in msgs]
    levels = [store.deserialize_cdr(m.data, BATTERY_TYPE).percentage for m in msgs]
    assert times[0] == 0.0 and times[-1] == pytest.approx(1.1)
    assert levels[0] == pytest.approx(0.9) and levels[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(levels, levels[1:]))
    for t, level in zip(times, levels):
        assert level == pytest.approx(0.9 - 0.7 * t / 1.1, abs=1e-6)
    assert all(m.stamp_ns == m.log_ns for m in msgs)


def test_compressed_png_is_lossless_and_jpeg_close(tmp_path):
    frames = _frames(3)
    for codec in ("png", "jpeg"):
        info = bagio.write_frames_bag(tmp_path / codec, frames, rate_hz=5, compressed=codec)
        topics = bagread.resolve_topics(info)
        assert topics.image == "/camera/image_raw/compressed" and topics.compressed
        got = list(bagread.iter_labelled_frames(info.path, topics))
        assert len(got) == 3
        for frame, (rgb, labels) in zip(got, frames):
            np.testing.assert_array_equal(frame.labels, labels)
            if codec == "png":
                np.testing.assert_array_equal(frame.rgb, rgb)
            else:
                assert frame.rgb.shape == rgb.shape


def _msg(store, array, encoding, step_pad=0):
    msg = make_image(store, array, encoding if encoding != "8UC3" else "bgr8", 5, "cam")
    if step_pad:
        rows = array.reshape(array.shape[0], -1)
        padded = np.zeros((rows.shape[0], rows.shape[1] + step_pad), np.uint8)
        padded[:, : rows.shape[1]] = rows
        msg.step, msg.data = padded.shape[1], padded.reshape(-1)
    msg.encoding = encoding
    return msg


@pytest.mark.parametrize("pad", [0, 3])
def test_decode_image_encodings_give_rgb(pad):
    store = typestore_for("jazzy")
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgr = rgb[:, :, ::-1].copy()
    alpha = np.full((5, 7, 1), 9, np.uint8)
    cases = {
        "rgb8": rgb, "bgr8": bgr, "8UC3": bgr,
        "rgba8": np.concatenate([rgb, alpha], 2), "bgra8": np.concatenate([bgr, alpha], 2),
    }
    for encoding, array in cases.items():
        out = decode_image(_msg(store, array, encoding, pad))
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
        assert out.flags.writeable
    gray = rgb[:, :, 0].copy()
    np.testing.assert_array_equal(decode_image(_msg(store, gray, "mono8", pad)),
                                  np.repeat(gray[:, :, None], 3, 2))
    np.testing.assert_array_equal(decode_labels(_msg(store, gray, "mono8", pad)), gray)


def test_decode_reads_bag_messages_with_the_node_codec():
    """Bag reading uses data/pixels.py, the node's codec: sixteen bits, YUV, any case."""
    store = typestore_for("humble")
    values = np.array([[0x1234, 0xFF00, 0x0100]], dtype=np.uint16)
    msg = make_image(store, np.zeros((1, 3), np.uint8), "mono8", 0, "")
    msg.encoding, msg.is_bigendian, msg.step = "16UC1", 1, 6
    msg.data = np.frombuffer(values.astype(">u2").tobytes(), np.uint8)
    np.testing.assert_array_equal(decode_image(msg)[..., 1], [[0x12, 0xFF, 0x01]])
    msg.encoding, msg.width, msg.step, msg.data = "uyvy", 2, 4, np.array(
        [128, 200, 128, 200], np.uint8)
    grey = decode_image(msg)
    assert grey.flags.writeable and (grey.max(axis=2) - grey.min(axis=2)).max() <= 1
    msg.encoding, msg.width, msg.step = "uyvy", 1, 4
    with pytest.raises(ValueError, match="even width"):
        decode_image(msg)


def test_decode_rejects_bad_images_with_a_reason():
    store = typestore_for("humble")
    msg = make_image(store, np.zeros((4, 4, 3), np.uint8), "rgb8", 0, "")
    msg.encoding = "bayer_rggb8"
    with pytest.raises(ValueError, match="bayer_rggb8.*supported"):
        decode_image(msg)
    msg = make_image(store, np.zeros((4, 4, 3), np.uint8), "rgb8", 0, "")
    msg.data = msg.data[:10]
    with pytest.raises(ValueError, match="bytes"):
        decode_image(msg)
    with pytest.raises(ValueError, match="mono8"):
        decode_labels(make_image(store, np.zeros((4, 4, 3), np.uint8), "rgb8", 0, ""))


def test_cdr_stamp_read_and_rewrite_match_deserialisation():
    store = typestore_for("humble")
    msg = make_image(store, np.zeros((2, 2, 3), np.uint8), "rgb8", 1_234_567_890_123, "cam")
    data = bytes(store.serialize_cdr(msg, IMAGE_TYPE))
    assert cdr_stamp_ns(data) == 1_234_567_890_123
    moved = restamp_cdr(data, 9_000_000_001)
    back = store.deserialize_cdr(moved, IMAGE_TYPE)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (9, 1)
    assert back.header.frame_id == "cam" and bytes(back.data) == bytes(msg.data)
    with pytest.raises(ValueError, match="CDR"):
        cdr_stamp_ns(b"\x01\x02")


def _record(path, storage, items):
    """A bag as another recorder might write it: (topic, stamp, kind, array) in given order."""
    store = typestore_for("humble")
    writer = Writer(path, version=8, storage_plugin=StoragePlugin[storage.upper()])
    writer.open()
    conns = {}
    for i, (topic, stamp, encoding, array) in enumerate(items):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, IMAGE_TYPE, typestore=store)
        msg = make_image(store, array, encoding, stamp, "cam")
        writer.write(conns[topic], 1000 + i, store.serialize_cdr(msg, IMAGE_TYPE))
    writer.close()


def test_frames_pair_by_stamp_whatever_the_order(tmp_path):
    frames = _frames(4, seed=3)
    # labels before images, one image without labels, one label without image
    items = [("/gt", 2, "mono8", frames[1][1]), ("/cam", 1, "bgr8", frames[0][0][:, :, ::-1]),
             ("/cam", 2, "rgb8", frames[1][0]), ("/gt", 1, "mono8", frames[0][1]),
             ("/cam", 3, "rgb8", frames[2][0]), ("/gt", 4, "mono8", frames[3][1])]
    _record(tmp_path / "rec", "sqlite3", items)
    info = bagread.inspect_bag(tmp_path / "rec")
    topics = bagread.resolve_topics(info, labels="/gt")
    assert topics.image == "/cam"  # the only other image topic
    got = {f.stamp_ns: f for f in bagread.iter_labelled_frames(info.path, topics)}
    assert sorted(got) == [1, 2]
    for stamp, (rgb, labels) in zip((1, 2), frames):
        np.testing.assert_array_equal(got[stamp].rgb, rgb)
        np.testing.assert_array_equal(got[stamp].labels, labels)
    loose = list(bagread.iter_labelled_frames(info.path, topics, require_labels=False))
    assert sorted(f.stamp_ns for f in loose) == [1, 2, 3]
    assert [f.labels for f in loose if f.stamp_ns == 3] == [None]


def test_topic_resolution_errors_name_what_exists(tmp_path):
    frames = _frames(1)
    _record(tmp_path / "two", "mcap", [("/a", 1, "rgb8", frames[0][0]),
                                       ("/b", 1, "rgb8", frames[0][0])])
    info = bagread.inspect_bag(tmp_path / "two")
    with pytest.raises(ValueError, match="--image-topic"):
        bagread.resolve_topics(info)
    assert bagread.resolve_topics(info, image="/b").image == "/b"
    with pytest.raises(ValueError, match=r"'/nope' is not in .*/a \(sensor_msgs/msg/Image, 1\)"):
        bagread.resolve_topics(info, image="/nope")
    with pytest.raises(ValueError, match="same"):
        bagread.resolve_topics(info, image="/a", labels="/a")


def test_bag_paths_and_options_are_checked(tmp_path):
    frames = _frames(2)
    bag = tmp_path / "bag"
    bagio.write_frames_bag(bag, frames)
    with pytest.raises(ValueError, match="exists already.*--overwrite"):
        bagio.write_frames_bag(bag, frames)
    bagio.write_frames_bag(bag, frames[:1], overwrite=True)
    assert bagread.inspect_bag(bag).count("/camera/image_raw") == 1
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a rosbag2 directory"):
        bagio.write_frames_bag(tmp_path / "notes", frames, overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="storage"):
        bagio.write_frames_bag(tmp_path / "x", frames, storage="rosbag1")
    with pytest.raises(FileNotFoundError):
        bagread.inspect_bag(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a rosbag2"):
        bagread.inspect_bag(tmp_path / "notes")


@pytest.mark.parametrize("text", ["1.0", "a:b", "100:10", "1:2:3"])
def test_parse_battery_rejects_bad_text(text):
    with pytest.raises(ValueError, match="--battery"):
        bagio.parse_battery(text)


def test_parse_battery():
    assert bagio.parse_battery("1.0:0.1") == (1.0, 0.1)
