"""A test camera in its own process: frames one at a time, each waited for, then a JSON report.

Used through the ``camera_process`` fixture (conftest.py) where the publishing process needs a
set-up of its own, such as a Fast DDS profile (read once per process):

    python test/dds_camera.py --size 640x480 --count 10 --reliability best_effort

Before the counted frames it sends a readiness frame until the node answers it (discovery is
two-way and takes a moment); then each frame goes out once and is waited for. Prints one line:
``{"matched_subscriptions": n, "sent": [stamps], "answered": {stamp: [height, width, frame_id]}}``.

With ``--rate HZ`` it streams instead, as a camera driver does: ``--count`` frames at that rate
once a subscription matched and the node announced its width (engines ready), waiting for no
answer; ``answered`` then holds the frames whose labels arrived within a second of the last.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from slimseg_ros.ros.conversions import make_header, make_image
from slimseg_ros.ros.client import Probe, wait_until


def _frame(size: tuple[int, int], stamp: int, frame_id: str) -> Image:
    w, h = size
    rgb = np.random.default_rng(stamp % 997).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return make_image(rgb, "rgb8", make_header(stamp, frame_id))


def _stream(probe: Probe, pub, size: tuple[int, int], args: argparse.Namespace
            ) -> tuple[list[int], dict[int, list]]:
    frames = [_frame(size, s, args.frame_id) for s in range(4)]  # made up front: a camera is cheap
    sent = []
    start = time.monotonic()
    for i in range(args.count):
        due = start + i / args.rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        msg = frames[i % len(frames)]
        stamp = args.first_stamp + i
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        pub.publish(msg)
        sent.append(stamp)
    time.sleep(1.0)
    arrived = probe.labels.arrival_of(sent)
    return sent, {stamp: [] for stamp in arrived}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--topic", default="/camera/image_raw")
    p.add_argument("--node", default="/slimseg", help="the node to wait for")
    p.add_argument("--labels", default="/labels", help="its labels topic")
    p.add_argument("--first-stamp", type=int, default=3_000_000_000)
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per frame")
    p.add_argument("--rate", type=float, help="stream COUNT frames at this rate (Hz)")
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    policy = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    with Probe(args.node, labels_topic=args.labels, probe_name="slimseg_test_camera") as probe:
        pub = probe.publisher(Image, args.topic, QoSProfile(depth=1, reliability=policy))
        wait_until(lambda: pub.get_subscription_count() > 0, args.timeout)
        matched = pub.get_subscription_count()
        if args.rate:
            probe.wait_started(args.timeout * 4)
            sent, answered = _stream(probe, pub, size, args)
            print(json.dumps({"matched_subscriptions": matched, "sent": sent,
                              "answered": answered}), flush=True)
            return 0
        ready = args.first_stamp - 1
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and probe.labels.wait_for_stamp(ready, 0.0) is None:
            pub.publish(_frame(size, ready, args.frame_id))
            probe.labels.wait_for_stamp(ready, 0.5)
        sent, answered = [], {}
        for stamp in range(args.first_stamp, args.first_stamp + args.count):
            pub.publish(_frame(size, stamp, args.frame_id))
            sent.append(stamp)
            got = probe.labels.wait_for_stamp(stamp, args.timeout)
            if got is not None:
                answered[stamp] = [got.height, got.width, got.header.frame_id]
    print(json.dumps({"matched_subscriptions": matched, "sent": sent, "answered": answered}),
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
