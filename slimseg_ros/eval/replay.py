"""Through-the-node evaluation: replay a bag over DDS to the ``slimseg`` node, score its answers.

The replay starts the node as a subprocess (or uses a running one), publishes the bag's camera
frames and battery readings at their recorded rate times ``speed`` (the CDR bytes unchanged, as
``ros2 bag play`` does), changes parameters on schedule through the node's parameter service,
and then matches every label image to its frame by header stamp. Frames the node skipped
(latest frame wins) count as dropped; the width of each answer is the last ``~/width`` value
received before it (the node publishes a switch before the first labels made at the new width).
Scoring happens after the node has stopped, so it takes no CPU from the run being measured.

The ROS side lives in :mod:`slimseg_ros.ros.replay_client`, imported only when a replay runs.
"""

from __future__ import annotations

import heapq
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import yaml

from ..data.bagread import (
    BagInfo, BagTopics, inspect_bag, iter_messages, read_labels, resolve_topics)
from ..data.msgcodec import BATTERY_TYPE, make_battery, restamp_cdr, typestore_for
from ..runtime.timing import percentile_ms
from .width_scores import WidthScores

__all__ = [
    "ParamEvent", "ReplayConfig", "ReplayResult", "node_command", "plan_replay", "run_replay",
    "score_recording",
]

NODE_MODULE = "slimseg_ros.ros.node"
# the node's controller settings recorded with a replay (for the report's plots)
_SETTINGS = ("battery_thresholds", "battery_widths", "target_fps", "adaptive")


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


@dataclass
class ReplayResult:
    """The JSON document and what the report plots are drawn from."""

    doc: dict[str, Any]
    scores: WidthScores


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


def _initial_params(config: ReplayConfig) -> list[tuple[str, Any]]:
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


# -- the node process ------------------------------------------------------------------------

def node_params(config: ReplayConfig, topics: BagTopics) -> dict[str, Any]:
    """The parameters a spawned node gets (its YAML file's content)."""
    params: dict[str, Any] = dict(config.node_params)
    if config.model_path:
        params["model_path"] = str(Path(config.model_path).resolve())
    params["adaptive"] = bool(config.adaptive)
    if config.width is not None:
        params["width"] = float(config.width)
    if config.target_fps is not None:
        params["target_fps"] = float(config.target_fps)
    params["input_transport"] = "compressed" if topics.compressed else "raw"
    return params


def node_command(config: ReplayConfig, topics: BagTopics, params_file: Path) -> list[str]:
    """``python -m slimseg_ros.ros.node --ros-args ...`` wired to the bag's topics."""
    image = topics.image
    base = image[: -len("/compressed")] if topics.compressed and image.endswith(
        "/compressed") else image
    name = config.node_fqn.rsplit("/", 1)
    remaps = [f"__node:={name[1]}", f"image:={base}",
              f"battery_state:={topics.battery or '/battery_state'}",
              f"labels:={config.labels_topic}"]
    if name[0]:
        remaps.insert(1, f"__ns:={name[0]}")
    if topics.compressed:
        remaps.append(f"image/compressed:={image}")
    cmd = [sys.executable, "-m", NODE_MODULE, "--ros-args", "--params-file", str(params_file)]
    for r in remaps:
        cmd += ["-r", r]
    return cmd


class _NodeProcess:
    """A spawned node: started with a params file, stopped with SIGINT like ``ros2 launch``."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def problem(self) -> str | None:
        code = self.proc.poll()
        if code is None:
            return None
        return f"the node exited with status {code} before it was ready: {self.tail()}"

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout_s: float = 10.0) -> int | None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(5.0)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait()
        finally:
            self._log.close()
        return self.proc.returncode


# -- scoring ---------------------------------------------------------------------------------

def _prediction(label: Any) -> np.ndarray:
    raw = np.frombuffer(zlib.decompress(label.data_z), np.uint8)
    if label.encoding.lower() not in ("mono8", "8uc1"):
        raise ValueError(f"labels came as {label.encoding!r}, expected mono8")
    return raw[: label.step * label.height_px].reshape(label.height_px, label.step)[
        :, : label.width_px]


def score_recording(
    recording: Any,
    original_stamp: dict[int, int],
    ground_truth: Callable[[set[int]], Iterator[tuple[int, np.ndarray]]] | None,
    class_names: Sequence[str],
    ignore_index: int = 255,
) -> tuple[dict[str, Any], WidthScores]:
    """Match answers to frames by stamp and score them against the ground truth.

    Args:
        recording: a :class:`~slimseg_ros.ros.replay_client.ReplayRecording` (or any object with
            ``sent``, ``labels`` and ``widths`` shaped like it).
        original_stamp: sent stamp -> the stamp of that frame's ground truth.
        ground_truth: ``f(stamps)`` yielding (stamp, HxW labels) for the wanted original stamps,
            in any order (None: no ground truth, timing only).
        class_names: one name per class id.

    Returns:
        (counts, timing and per-frame records; scores per width and overall).
    """
    sent = {stamp: t for stamp, t in recording.sent}
    answers: dict[int, Any] = {}
    duplicates = unexpected = 0
    for label in recording.labels:
        if label.stamp_ns not in sent:
            unexpected += 1
        elif label.stamp_ns in answers:
            duplicates += 1
        else:
            answers[label.stamp_ns] = label
    scores = WidthScores(class_names, ignore_index)
    by_original: dict[int, list[int]] = {}
    for stamp in answers:
        by_original.setdefault(original_stamp.get(stamp, stamp), []).append(stamp)
    size_mismatch = 0
    scored = 0
    if ground_truth is not None and by_original:
        for orig, gt in ground_truth(set(by_original)):
            for stamp in by_original.get(orig, ()):
                label = answers[stamp]
                pred = _prediction(label)
                if pred.shape != gt.shape:
                    size_mismatch += 1
                    continue
                scores.add(label.width, pred, gt, label.t - sent[stamp])
                scored += 1
    frames = []
    for stamp, t_sent in sorted(sent.items(), key=lambda kv: kv[1]):
        label = answers.get(stamp)
        frames.append({
            "stamp_ns": stamp, "t_sent": round(t_sent, 6),
            "t_received": None if label is None else round(label.t, 6),
            "latency_ms": None if label is None else round((label.t - t_sent) * 1e3, 3),
            "width": None if label is None else label.width,
        })
    latencies = [answers[s].t - sent[s] for s in answers]
    n_sent, n_done = len(sent), len(answers)
    counts = {
        "frames_sent": n_sent,
        "frames_processed": n_done,
        "processed_fraction": (n_done / n_sent) if n_sent else None,
        "frames_dropped": n_sent - n_done,
        "frames_scored": scored,
        "unexpected_outputs": unexpected,
        "duplicate_outputs": duplicates,
        "size_mismatches": size_mismatch,
        "latency_ms": {
            "p50": percentile_ms(latencies, 50), "p95": percentile_ms(latencies, 95),
            "max": percentile_ms(latencies, 100),
            "mean": float(np.mean(latencies) * 1e3) if latencies else None,
        },
        "frames": frames,
    }
    return counts, scores


_LOG_SWITCH = re.compile(r"\]: width ([0-9.]+): (.*)$")


def _logged_switches(log_path: Path | None) -> list[tuple[float, str]]:
    """(width, reason) of every switch a spawned node logged, in order."""
    if log_path is None or not log_path.is_file():
        return []
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_SWITCH.search(line)
        if match:
            out.append((float(match.group(1)), match.group(2).strip()))
    return out


def _switches(recording: Any, logged: list[tuple[float, str]]) -> list[dict[str, Any]]:
    """Width changes with the reason the node gave: from its log when we started it, else
    from the first diagnostics status that shows the new width."""
    out: list[dict[str, Any]] = []
    pending = list(logged)
    for t, width in recording.widths:
        if out and out[-1]["width"] == width:
            continue
        reason = ""
        while pending:
            w, text = pending.pop(0)
            if math.isclose(w, width, abs_tol=1e-6):
                reason = text
                break
        for td, status in recording.diagnostics if not reason else ():
            if td >= t - 0.05 and status.get("width") and math.isclose(
                    float(status["width"]), width, abs_tol=1e-6):
                reason = status.get("last_switch_reason", "")
                break
        out.append({"t": round(t, 3), "width": width, "reason": reason})
    return out


def _conditions() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu_count": os.cpu_count(), "loadavg_1min": round(load[0], 2),
            "python": sys.version.split()[0]}


def run_replay(
    bag: str | Path,
    config: ReplayConfig,
    *,
    image_topic: str | None = None,
    label_topic: str | None = None,
    battery_topic: str | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Replay ``bag`` through the node and score the answers.

    Args:
        bag: rosbag2 directory.
        config: how to replay (see :class:`ReplayConfig`).
        image_topic, label_topic, battery_topic: the bag's topics (default: found by name/type).
        class_names: class names for the scores (default: the checkpoint's, else the running
            node's ``class_names`` parameter).
        progress: show a progress bar of sent frames.
        log: where to say what is happening (default: nowhere).
    """
    say = log or (lambda _m: None)
    info = inspect_bag(bag)
    topics = resolve_topics(info, image_topic, label_topic, battery_topic)
    plan = plan_replay(info, topics, config)
    names = list(class_names) if class_names else _class_names(config.model_path,
                                                                config.spawn_node)

    from ..ros.replay_client import ReplayClient, typed_node_params  # rclpy only when needed

    env = dict(os.environ)
    if config.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(config.domain_id)
    workdir = Path(tempfile.mkdtemp(prefix="slimseg_replay_"))
    node: _NodeProcess | None = None
    params = typed_node_params(node_params(config, topics)) if config.spawn_node else {}
    cmd: list[str] = []
    load_start = _conditions()
    client = ReplayClient(node_name=config.node_fqn, publish_topics=plan.publish_topics,
                          image_topic=topics.image, labels_topic=config.labels_topic,
                          domain_id=config.domain_id)
    bar = None
    try:
        if config.spawn_node:
            params_file = workdir / "params.yaml"
            params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
            cmd = node_command(config, topics, params_file)
            log_path = Path(config.node_log) if config.node_log else workdir / "node.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            say(f"starting the node: {' '.join(cmd[1:])}")
            node = _NodeProcess(cmd, log_path, env)
        say(f"waiting for {config.node_fqn} (model load and warm-up)")
        t_wait = time.monotonic()
        client.wait_for_node(config.startup_timeout_s,
                             node.problem if node is not None else None)
        startup_s = time.monotonic() - t_wait
        initial = _initial_params(config)
        wanted = (["class_names", "widths", *_SETTINGS] + [name for name, _ in initial]
                  + [p.name for p in config.param_events])
        node_values = client.get_parameters(list(dict.fromkeys(wanted)))
        if not names:
            names = list(node_values.get("class_names") or [])
            if not names:
                raise ValueError(f"{config.node_fqn} has no class_names parameter; pass the "
                                 f"checkpoint so the labels can be scored")
        say(f"node ready after {startup_s:.1f} s; replaying {plan.frames} frames over "
            f"{plan.duration_s:.1f} s")
        for name, value in initial:
            entry = client.set_parameter(name, value, wait_s=10.0)
            if not entry["successful"]:
                raise ValueError(f"{config.node_fqn} refused {name} = {value}: "
                                 f"{entry['reason'] or 'no answer'}")
        if progress:
            from ..progress import progress_bar

            bar = progress_bar(total=plan.frames, desc="replay", unit="frame")
        recording = client.run(plan.events(), on_frame=bar.update if bar else None,
                               settle_s=config.settle_s, expected_frames=plan.frames)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        exit_code = node.stop() if node is not None else None
    load_end = _conditions()

    gt = None
    if topics.labels is not None:
        def gt(stamps: set[int]) -> Iterator[tuple[int, np.ndarray]]:
            return read_labels(info.path, topics.labels, stamps)

    counts, scores = score_recording(recording, plan.original_stamp, gt, names, ignore_index)
    doc = _document(
        info, topics, config, plan, recording, counts, scores,
        node={"name": config.node_fqn, "spawned": config.spawn_node, "params": params,
              "widths": node_values.get("widths"),
              "at_start": {k: node_values[k] for k in _SETTINGS if k in node_values},
              "command": cmd, "startup_s": round(startup_s, 2), "exit_code": exit_code,
              "log": str(node.log_path) if node is not None else None},
        logged=_logged_switches(node.log_path if node is not None else None),
        conditions={"start": load_start, "end": load_end})
    if not recording.labels:
        doc["notes"].append(f"no labels came back; node log: "
                            f"{node.tail() if node is not None else 'n/a'}")
    if config.node_log is not None or node is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return ReplayResult(doc, scores)


def _document(info: BagInfo, topics: BagTopics, config: ReplayConfig, plan: ReplayPlan,
              recording: Any, counts: dict[str, Any], scores: WidthScores, *,
              node: dict[str, Any], logged: list[tuple[float, str]],
              conditions: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics.json`` document of a replay."""
    duration = max([t for _, t in recording.sent] + [0.0]) or plan.duration_s
    return {
        "mode": "replay",
        "bag": str(info.path),
        "topics": {"image": topics.image, "labels": topics.labels, "battery": topics.battery},
        "model": config.model_path,
        "node": node,
        "speed": config.speed,
        "loops": config.loops,
        "duration_s": round(duration, 3),
        **{k: v for k, v in counts.items() if k != "frames"},
        "fps": {"input": (counts["frames_sent"] - 1) / duration if duration > 0 else None,
                "output": counts["frames_processed"] / duration if duration > 0 else None},
        "overall": scores.summary() if scores.overall.frames else None,
        "widths": scores.per_width(),
        "width_timeline": _switches(recording, logged),
        "battery_timeline": [[round(t, 3), round(b, 4)] for t, b in plan.battery_series],
        "param_changes": recording.params,
        "node_diagnostics": recording.diagnostics[-1][1] if recording.diagnostics else None,
        "notes": recording.notes,
        "conditions": conditions,
        "frames": counts["frames"],
    }


def _class_names(model_path: str | None, required: bool) -> list[str]:
    """Class names from the checkpoint (empty: ask the running node later)."""
    from ..model.checkpoint import read_metadata
    from ..runtime.loader import default_model_path

    path = model_path or default_model_path()
    if path is None:
        if required:
            raise ValueError("no checkpoint given and the default model is not installed; "
                             "pass --checkpoint")
        return []
    return list(read_metadata(path).class_names)
