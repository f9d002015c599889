"""Replay planning, without ROS: how a bag's frames, battery readings and parameter changes go
out, in time order, at the recorded rate times ``speed``.

:mod:`slimseg_ros.ros.client.replay` carries a plan out through the node over DDS;
:mod:`slimseg_ros.eval.replay_score` scores what came back.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..data.bagread import BagInfo, BagTopics, iter_messages
from ..data.msgcodec import BATTERY_TYPE, make_battery, restamp_cdr, typestore_for

__all__ = ["ParamEvent", "ReplayConfig", "ReplayPlan", "initial_params", "plan_replay"]


@dataclass(frozen=True)
class ParamEvent:
    """Set parameter ``name`` to ``value`` ``t_s`` seconds into the replay (wall clock)."""

    t_s: float
    name: str
    value: Any


@dataclass(frozen=True)
class ReplayConfig:
    """How to replay.

    Attributes:
        speed: playback rate factor (2.0 = twice the recorded rate).
        loops: play the bag this many times back to back; stamps of later loops are shifted by
            whole bag lengths so every frame stays unique (ground truth follows the frame).
        spawn_node: start the node as a subprocess; False uses a running node.
        node_name: the node's fully qualified name (``/slimseg``).
        labels_topic: where the node publishes labels.
        model_path: checkpoint for a spawned node (None: the node's default model).
        adaptive, width, target_fps: the node's width policy; a ``width`` pins it.
        node_params: further parameters of a spawned node (``backend``, ``device``, ...).
        battery: (start, end) fractions: publish a battery draining linearly over the whole
            replay instead of the bag's battery topic (None: the bag's, if any).
        battery_rate_hz: rate of synthesised battery readings.
        param_events: parameter changes during the replay.
        settle_s: wait this long after the last frame for outstanding labels.
        startup_timeout_s: how long the node may take to load and warm up.
        domain_id: ROS domain (None: ``ROS_DOMAIN_ID`` or 0); a spawned node joins it too.
        node_log: file for a spawned node's output (None: a temporary file).
        max_frames: replay at most this many frames per loop (None: all).
    """

    speed: float = 1.0
    loops: int = 1
    spawn_node: bool = True
    node_name: str = "/slimseg"
    labels_topic: str = "/labels"
    model_path: str | None = None
    adaptive: bool = True
    width: float | None = None
    target_fps: float | None = None
    node_params: dict[str, Any] = field(default_factory=dict)
    battery: tuple[float, float] | None = None
    battery_rate_hz: float = 2.0
    param_events: tuple[ParamEvent, ...] = ()
    settle_s: float = 3.0
    startup_timeout_s: float = 180.0
    domain_id: int | None = None
    node_log: Path | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive factor, got {self.speed}")
        if self.loops < 1:
            raise ValueError(f"loops must be >= 1, got {self.loops}")
        if self.width is not None and self.adaptive:
            object.__setattr__(self, "adaptive", False)  # a width pins, as on the node
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"target_fps must be > 0, got {self.target_fps}")
        if self.battery is not None and not all(0 <= b <= 1 for b in self.battery):
            raise ValueError(f"battery fractions must be in [0, 1], got {self.battery}")
        if not self.battery_rate_hz > 0:
            raise ValueError(f"battery_rate_hz must be > 0, got {self.battery_rate_hz}")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"ROS domain ids are 0..232, got {self.domain_id}")

    @property
    def node_fqn(self) -> str:
        return "/" + self.node_name.strip("/")


@dataclass
class ReplayPlan:
    """Everything that goes out, in time order, and how sent frames map to the bag's frames."""

    events: Callable[[], Iterator[tuple[float, str, tuple]]]
    """Makes the event stream (lazily reads the bag)."""
    frames: int
    """Frames that will be sent."""
    duration_s: float
    """Wall-clock length of the replay."""
    original_stamp: dict[int, int]
    """Sent stamp -> stamp of the frame in the bag (differs in later loops)."""
    battery_series: list[tuple[float, float]]
    """(planned time, fraction) of every battery reading sent."""
    publish_topics: dict[str, str]


def _frame_stamps(info: BagInfo, topic: str, max_frames: int | None
                  ) -> list[tuple[int, int]]:
    """(log_ns, header stamp ns) of the image messages, in log order."""
    out = []
    for msg in iter_messages(info.path, [topic]):
        out.append((msg.log_ns, msg.stamp_ns))
        if max_frames is not None and len(out) >= max_frames:
            break
    return out


def plan_replay(info: BagInfo, topics: BagTopics, config: ReplayConfig) -> ReplayPlan:
    """Work out the schedule: frames (and the bag's battery) per loop, synthesised battery,
    parameter changes; times in seconds from the start, already divided by ``speed``."""
    frames = _frame_stamps(info, topics.image, config.max_frames)
    if not frames:
        raise ValueError(f"{topics.image} in {info.path} holds no messages")
    stamps = [s for _, s in frames]
    if len(set(stamps)) != len(stamps):
        raise ValueError(f"frames on {topics.image} repeat header stamps; labels cannot be "
                         f"matched to frames")
    first_log, last_log = frames[0][0], frames[-1][0]
    period_ns = int(np.median(np.diff([t for t, _ in frames]))) if len(frames) > 1 else 10**8
    loop_log_ns = last_log - first_log + period_ns
    loop_stamp_ns = max(stamps) - min(stamps) + period_ns
    speed = config.speed
    use_bag_battery = config.battery is None and topics.battery is not None
    publish_topics = {topics.image: topics.image_type}
    battery_topic = topics.battery or "/battery_state"
    if use_bag_battery or config.battery is not None:
        publish_topics[battery_topic] = BATTERY_TYPE
    original = {s + k * loop_stamp_ns: s for k in range(config.loops) for s in stamps}
    duration_s = (config.loops * loop_log_ns - period_ns) / 1e9 / speed
    n_frames = len(frames)
    stop_log = frames[-1][0]

    def bag_events() -> Iterator[tuple[float, str, tuple]]:
        names = [topics.image] + ([topics.battery] if use_bag_battery else [])
        for k in range(config.loops):
            sent = 0
            for msg in iter_messages(info.path, names):
                if msg.log_ns > stop_log:
                    break
                t = (msg.log_ns - first_log + k * loop_log_ns) / 1e9 / speed
                if t < 0:
                    continue  # battery readings before the first frame
                data = msg.data if k == 0 else restamp_cdr(
                    msg.data, msg.stamp_ns + k * loop_stamp_ns)
                if msg.topic == topics.image:
                    sent += 1
                    yield t, "publish", (msg.topic, data, msg.stamp_ns + k * loop_stamp_ns)
                    if sent >= n_frames:
                        break
                else:
                    yield t, "publish", (msg.topic, data, None)

    battery_series: list[tuple[float, float]] = []
    synthetic: list[tuple[float, str, tuple]] = []
    if config.battery is not None:
        store = typestore_for("humble")
        start, end = config.battery
        n = max(2, int(duration_s * config.battery_rate_hz) + 1)
        for i in range(n):
            t = duration_s * i / (n - 1)
            level = start + (end - start) * i / (n - 1)
            stamp = min(stamps) + int(t * speed * 1e9)
            data = bytes(store.serialize_cdr(make_battery(store, level, stamp), BATTERY_TYPE))
            synthetic.append((t, "publish", (battery_topic, data, None)))
            battery_series.append((t, level))
    elif use_bag_battery:
        store = typestore_for("humble")
        for k in range(config.loops):
            for msg in iter_messages(info.path, [topics.battery]):
                t = (msg.log_ns - first_log + k * loop_log_ns) / 1e9 / speed
                if 0 <= t <= duration_s:
                    pct = float(store.deserialize_cdr(msg.data, BATTERY_TYPE).percentage)
                    battery_series.append((t, pct))
    params = [(p.t_s, "param", (p.name, p.value)) for p in config.param_events]

    def priority(event: tuple[float, str, tuple]) -> tuple[float, int]:
        # at equal times: parameters, then battery, then the frame
        kind, payload = event[1], event[2]
        return event[0], 0 if kind == "param" else 1 if payload[2] is None else 2

    def events() -> Iterator[tuple[float, str, tuple]]:
        scheduled = sorted(params + synthetic, key=priority)
        return heapq.merge(scheduled, bag_events(), key=priority)

    return ReplayPlan(events, n_frames * config.loops, duration_s, original, battery_series,
                      publish_topics)


def initial_params(config: ReplayConfig) -> list[tuple[str, Any]]:
    """What a running node is set to before the first frame (a started node has ``width`` and
    ``target_fps`` in its parameter file instead)."""
    if config.spawn_node:
        return []
    first: list[tuple[str, Any]] = []
    if config.width is not None:
        first.append(("width", float(config.width)))
    if config.target_fps is not None:
        first.append(("target_fps", float(config.target_fps)))
    return first
