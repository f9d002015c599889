"""Through-the-node evaluation: replay a bag over DDS to the ``slimseg`` node, score its answers.

The replay starts the node as a subprocess (:class:`~slimseg_ros.ros.client.NodeProcess`) wired to
the bag's topics, or uses a running one, publishes the bag's camera frames and battery readings
at their recorded rate times ``speed`` (:mod:`slimseg_ros.eval.replay_plan`), changes parameters
on schedule through the node's parameter service, and records what comes back
(:mod:`slimseg_ros.ros.client.replay_client`). Frames the node skipped (latest frame wins) count as
dropped; the width of each answer is the last ``~/width`` value received before it (the node
publishes a switch before the first labels made at the new width), and the reason of each switch
is the one its status gave. Scoring (:mod:`slimseg_ros.eval.replay_score`) happens after the node
has stopped, so it takes no CPU from the run being measured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ...data.bagread import BagTopics, inspect_bag, read_labels, resolve_topics
from ...eval.replay_plan import ReplayConfig, initial_params, plan_replay
from ...eval.replay_score import (
    ReplayResult, checkpoint_class_names, conditions, replay_document, score_recording)
from .node_process import NodeProcess, node_command, write_params_file
from .replay_client import ReplayClient

__all__ = ["node_params", "replay_node_command", "run_replay"]

# the node's controller settings recorded with a replay (for the report's plots)
_SETTINGS = ("battery_thresholds", "battery_widths", "target_fps", "adaptive")


def node_params(config: ReplayConfig, topics: BagTopics) -> dict[str, Any]:
    """The parameters a spawned node gets (its parameter file's content)."""
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


def replay_node_command(config: ReplayConfig, topics: BagTopics, params_file: Path) -> list[str]:
    """The node's command (:func:`~slimseg_ros.ros.client.node_command`) wired to the bag's
    topics."""
    image = topics.image
    base = image[: -len("/compressed")] if topics.compressed and image.endswith(
        "/compressed") else image
    namespace, name = config.node_fqn.rsplit("/", 1)
    remaps = [f"__node:={name}", f"image:={base}",
              f"battery_state:={topics.battery or '/battery_state'}",
              f"labels:={config.labels_topic}"]
    if namespace:
        remaps.insert(1, f"__ns:={namespace}")
    if topics.compressed:
        remaps.append(f"image/compressed:={image}")
    return node_command(params_file=params_file, remaps=remaps)


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
        config: how to replay (see :class:`~slimseg_ros.eval.replay_plan.ReplayConfig`).
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
    names = list(class_names) if class_names else checkpoint_class_names(
        config.model_path, config.spawn_node)

    env = dict(os.environ)
    if config.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(config.domain_id)
    workdir = Path(tempfile.mkdtemp(prefix="slimseg_replay_"))
    node: NodeProcess | None = None
    params = node_params(config, topics) if config.spawn_node else {}
    cmd: list[str] = []
    load_start = conditions()
    client = ReplayClient(node_name=config.node_fqn, publish_topics=plan.publish_topics,
                          image_topic=topics.image, labels_topic=config.labels_topic,
                          domain_id=config.domain_id)
    bar = None
    try:
        if config.spawn_node:
            cmd = replay_node_command(config, topics,
                                      write_params_file(workdir / "params.yaml", params))
            log_path = Path(config.node_log) if config.node_log else workdir / "node.log"
            say(f"starting the node: {' '.join(cmd[1:])}")
            node = NodeProcess(cmd, log_path, env)
        say(f"waiting for {config.node_fqn} (model load and warm-up)")
        t_wait = time.monotonic()
        client.wait_for_node(config.startup_timeout_s,
                             node.problem if node is not None else None)
        startup_s = time.monotonic() - t_wait
        initial = initial_params(config)
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
            from ...progress import progress_bar

            bar = progress_bar(total=plan.frames, desc="replay", unit="frame")
        recording = client.run(plan.events(), on_frame=bar.update if bar else None,
                               settle_s=config.settle_s, expected_frames=plan.frames)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        exit_code = node.stop() if node is not None else None
    load_end = conditions()

    gt = None
    if topics.labels is not None:
        def gt(stamps: set[int]) -> Iterator[tuple[int, np.ndarray]]:
            return read_labels(info.path, topics.labels, stamps)

    counts, scores = score_recording(recording, plan.original_stamp, gt, names, ignore_index)
    doc = replay_document(
        info, topics, config, plan, recording, counts, scores,
        node={"name": config.node_fqn, "spawned": config.spawn_node, "params": params,
              "widths": node_values.get("widths"),
              "at_start": {k: node_values[k] for k in _SETTINGS if k in node_values},
              "command": cmd, "startup_s": round(startup_s, 2), "exit_code": exit_code,
              "log": str(node.log_path) if node is not None else None},
        conditions={"start": load_start, "end": load_end})
    if not recording.labels:
        doc["notes"].append(f"no labels came back; node log: "
                            f"{node.tail() if node is not None else 'n/a'}")
    if config.node_log is not None or node is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return ReplayResult(doc, scores)
