"""Reliability of the node under faults and load: measurements for docs/log/reliability.md.

    python experiments/reliability.py soak --minutes 10 --rate 30 --out runs/rel/soak.json
    python experiments/reliability.py burst --frames 500
    python experiments/reliability.py restart          # a camera killed, another reliability
    python experiments/reliability.py sigterm          # SIGTERM at moments of a cold start
    python experiments/reliability.py startup --runs 20 [--cli]   # param answers after appearing

Every command starts the node as users do (its own process, ``slimseg_node``, the shipped model
unless ``--checkpoint``), drives it from this process over real DDS with
:mod:`slimseg_ros.ros.client`, and prints one JSON document (``--out`` also writes it) with the
load average before and after: the machine may be shared, and absolute times follow its load.
Both processes use the Fast DDS large-data profile (what ``seg.launch.py`` gives the node; a
camera needs it too), unless ``--no-profile``. Results are measurements, not pass/fail checks;
the tests check behaviour. The pass/fail fault injections (fuzzed images, random parameter
sets, bad model files) are tests: test/test_ros_faults.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
PROFILE = ROOT / "config" / "fastdds_large_data.xml"
TOPIC = "/camera/image_raw"
NODE = "/slimseg"


def _load() -> list[float]:
    from slimseg_ros.runtime.timing import load_average

    return [round(v, 2) for v in load_average()]


def _p50(seconds: list[float]) -> float | None:
    from slimseg_ros.runtime.timing import percentile_ms

    value = percentile_ms(seconds, 50)
    return None if value is None else round(value, 1)


# -- the node and this process's side -------------------------------------------------------------

class Session:
    """The node as a process (``slimseg_node``) and a probe of it, with a camera publisher."""

    def __init__(self, args: argparse.Namespace, params: list[str] = (), name: str = "slimseg",
                 reliable_camera: bool = True, wait: bool = True, depth: int = 1) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from slimseg_ros.ros.client import NodeProcess, Probe, node_command

        self.work = Path(tempfile.mkdtemp(prefix="slimseg_rel_"))
        model = [f"model_path:={args.checkpoint}"] if args.checkpoint else []
        cmd = node_command(remaps=[f"__node:={name}", f"image:={TOPIC}"],
                           params=[*model, f"backend:={args.backend}", *params])
        self.node = NodeProcess(cmd, self.work / "node.log", node_env(args))
        self.probe = Probe("/" + name, labels_topic=None)
        # labels: stamps and arrival times only (keeping the images would fill the memory)
        self.labels = self.probe.collect(Image, "/labels", QoSProfile(
            depth=50, reliability=ReliabilityPolicy.RELIABLE), keep=None,
            transform=lambda _m: True)
        self.camera = self.probe.publisher(Image, TOPIC, QoSProfile(
            depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable_camera
            else ReliabilityPolicy.BEST_EFFORT))
        if wait:
            self.probe.wait_started(600.0, self.node.problem)

    def answered(self, msg: Any, timeout: float = 30.0) -> bool:
        """Publish ``msg`` until labels with its stamp arrive."""
        from slimseg_ros.data.stamps import stamp_ns

        stamp = stamp_ns(msg.header)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.camera.publish(msg)
            if self.labels.wait_for_stamp(stamp, 0.5) is not None:
                return True
        return False

    def close(self) -> int | None:
        self.probe.close()
        return self.node.stop()


def node_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if not args.no_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    return env


class Frames:
    """Camera frames of a few sizes and encodings, made once, stamped on use."""

    def __init__(self) -> None:
        self._cache: dict[tuple[tuple[int, int], str], Any] = {}

    def make(self, size: tuple[int, int], encoding: str, stamp: int,
             frame_id: str = "camera") -> Any:
        from slimseg_ros.ros.conversions import make_header, make_image

        key = (size, encoding)
        if key not in self._cache:
            w, h = size
            rgb = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
            self._cache[key] = make_image(rgb, encoding, make_header(0))
        template = self._cache[key]
        msg = type(template)(header=make_header(stamp, frame_id), height=template.height,
                             width=template.width, encoding=template.encoding,
                             is_bigendian=0, step=template.step, data=template.data)
        return msg


def _every(period: float, until: float) -> Iterator[float]:
    """Ticks at a fixed rate (no drift; a tick missed while busy is skipped, not made up)
    until ``until`` (monotonic)."""
    t = time.monotonic()
    while t < until:
        now = time.monotonic()
        if t > now:
            time.sleep(t - now)
        elif now - t > period:
            t = now
        yield t
        t += period


# -- soak -----------------------------------------------------------------------------------------

SOAK_MODES = (((640, 480), "rgb8"), ((320, 240), "bgr8"), ((1280, 720), "rgb8"),
              ((640, 480), "mono8"), ((640, 480), "yuv422"), ((640, 480), "bgra8"))
SOAK_SETS = ({"width": 0.5}, {"adaptive": True}, {"max_width": 0.75}, {"max_width": 1.0},
             {"target_fps": 20}, {"target_fps": 30.0})


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """A camera at ``--rate`` for ``--minutes``: every 10 s another size or encoding and a
    parameter set, a battery message every second (a 60 s sawtooth: each minute sees the same
    mix, so minutes compare). Per minute: frames sent and answered, latency p50, the node's RSS,
    threads and file descriptors."""
    from sensor_msgs.msg import BatteryState

    from slimseg_ros.ros.qos import battery_qos

    s = Session(args, ["input_reliability:=reliable"])
    frames, battery = Frames(), s.probe.publisher(BatteryState, "/battery_state", battery_qos())
    sent: dict[int, float] = {}
    minutes: list[dict[str, Any]] = []
    errors: list[str] = []
    start = time.monotonic()
    end = start + 60.0 * args.minutes
    stamp = 1_000_000_000
    next_minute, last_second, last_ten = start + 60.0, -1, -1
    try:
        for tick in _every(1.0 / args.rate, end):
            elapsed = tick - start
            ten = int(elapsed // 10)
            if ten != last_ten:
                last_ten = ten
                values = SOAK_SETS[ten % len(SOAK_SETS)]
                s.probe.set_parameters_async(values, lambda r, v=values: errors.extend(
                    f"{v}: {why}" for ok, why in (r or [(False, "no answer")]) if not ok))
            if int(elapsed) != last_second:
                last_second = int(elapsed)
                level = 1.0 - (elapsed % 60.0) / 60.0 * 0.9
                status = (BatteryState.POWER_SUPPLY_STATUS_CHARGING if level < 0.2
                          else BatteryState.POWER_SUPPLY_STATUS_DISCHARGING)
                battery.publish(BatteryState(percentage=level, power_supply_status=status))
            size, encoding = SOAK_MODES[ten % len(SOAK_MODES)]
            stamp += 1
            s.camera.publish(frames.make(size, encoding, stamp))
            sent[stamp] = time.monotonic()
            if tick >= next_minute:
                minutes.append(_minute(s, sent, len(minutes) + 1, next_minute - 60.0,
                                       next_minute))
                next_minute += 60.0
        time.sleep(2.0)
        if end - (next_minute - 60.0) > 1.0:
            minutes.append(_minute(s, sent, len(minutes) + 1, next_minute - 60.0, end))
        alive = s.answered(frames.make((640, 480), "rgb8", 9_999_000_000))
        status = s.probe.status()
    finally:
        code = s.close()
    return {"rate_hz": args.rate, "minutes": minutes, "rejected_parameter_sets": errors,
            "good_frame_answered_after": alive, "exit_code": code,
            "final_status": {k: status.get(k) for k in (
                "received_frames", "processed_frames", "dropped_frames", "rejected_frames",
                "failed_frames", "backend", "input_reliability")}}


def _minute(s: Session, sent: dict[int, float], index: int, begin: float, end: float
            ) -> dict[str, Any]:
    arrived = {stamp: t for t, stamp, _ in s.labels.stamped() if stamp is not None}
    window = [stamp for stamp, t in sent.items() if begin <= t < end]
    latency = [arrived[st] - sent[st] for st in window if st in arrived]
    row = {"minute": index, "sent": len(window), "answered": len(latency),
           "answered_fraction": round(len(latency) / len(window), 3) if window else None,
           "latency_p50_ms": _p50(latency), "load": _load()}
    row.update(s.node.resources() or {})
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


# -- burst ----------------------------------------------------------------------------------------

def burst(args: argparse.Namespace) -> dict[str, Any]:
    """``--frames`` 640x480 frames as fast as this process can publish them (a reliable
    publisher with a history of 10)."""
    s = Session(args, ["input_reliability:=reliable"], depth=10)
    frames = Frames()
    try:
        before = s.node.resources()
        t0 = time.monotonic()
        for i in range(args.frames):
            s.camera.publish(frames.make((640, 480), "rgb8", 2_000_000_000 + i))
        publish_s = time.monotonic() - t0
        time.sleep(3.0)
        alive = s.answered(frames.make((640, 480), "rgb8", 2_999_999_999))
        status = s.probe.fresh_status(time.time(), 10.0) or {}
        after = s.node.resources()
    finally:
        code = s.close()
    answered = sum(1 for _, st, _ in s.labels.stamped()
                   if st is not None and 2_000_000_000 <= st < 2_000_000_000 + args.frames)
    return {"frames": args.frames, "publish_s": round(publish_s, 2), "answered": answered,
            "node_counts": {k: status.get(k) for k in ("received_frames", "processed_frames",
                                                        "dropped_frames", "failed_frames")},
            "good_frame_answered_after": alive, "resources_before": before,
            "resources_after": after, "exit_code": code}


# -- a camera killed and restarted ----------------------------------------------------------------

def camera(args: argparse.Namespace) -> dict[str, Any]:
    """(internal) A camera process: ``--rate`` frames of ``--size`` with ``--reliability``."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from slimseg_ros.ros.client import Probe

    policy = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    frames = Frames()
    with Probe(NODE, labels_topic=None, probe_name=f"camera_{os.getpid()}") as probe:
        pub = probe.publisher(Image, TOPIC, QoSProfile(depth=1, reliability=policy))
        stamp = args.first_stamp
        for _ in _every(1.0 / args.rate, time.monotonic() + args.duration):
            stamp += 1
            pub.publish(frames.make(args.size, "rgb8", stamp, frame_id=args.reliability))
    return {}


def restart(args: argparse.Namespace) -> dict[str, Any]:
    """A best-effort camera process at 30 Hz is SIGKILLed (it stays in the graph until its
    lease expires, ~20 s) and a reliable one takes over at once; labels per second of the new
    one, and when the node's input QoS followed. Cameras run without the large-data profile
    (the case where best effort loses 640x480 frames)."""
    from rclpy.qos import ReliabilityPolicy

    s = Session(args, [], reliable_camera=True)
    env = node_env(args)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)

    def start(reliability: str, first: int, duration: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(SCRIPT), "camera", "--reliability",
                                 reliability, "--size", "640x480", "--rate", "30",
                                 "--duration", str(duration), "--first-stamp", str(first)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s.probe.node.destroy_publisher(s.camera)
        old = start("best_effort", 3_000_000_000, 600)
        s.probe.wait_status(lambda st: st.get("input_reliability", "").startswith(
            "best_effort") and "1 of 1" in st.get("input_reliability", ""), 60.0)
        time.sleep(5.0)
        old.kill()  # SIGKILL: no clean exit, the ghost stays in the graph
        old.wait()
        killed = time.monotonic()
        new = start("reliable", 4_000_000_000, args.seconds)
        reliabilities: list[tuple[float, str]] = []
        appeared = None
        while new.poll() is None:
            if appeared is None and any(
                    i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                    for i in s.probe.node.get_publishers_info_by_topic(TOPIC)):
                appeared = round(time.monotonic() - killed, 1)
            status = s.probe.status()
            reliabilities.append((round(time.monotonic() - killed, 1),
                                  status.get("input_reliability", "")))
            time.sleep(0.5)
        per_second = [0] * (int(args.seconds) + 5)
        for t, stamp, _ in s.labels.stamped():
            if stamp is not None and stamp > 4_000_000_000 and t >= killed:
                per_second[min(int(t - killed), len(per_second) - 1)] += 1
        switched = next((t for t, r in reliabilities if r.startswith("reliable")), None)
    finally:
        code = s.close()
    return {"labels_per_second_after_kill": per_second[: int(args.seconds)],
            "new_camera_in_graph_after_s": appeared,
            "reliable_subscription_after_s": switched, "exit_code": code,
            "last_input_reliability": reliabilities[-1][1] if reliabilities else None}


# -- SIGTERM during a cold start ------------------------------------------------------------------

def sigterm(args: argparse.Namespace) -> dict[str, Any]:
    """SIGTERM at moments of a cold start (empty engine cache, ``--backend``): during imports,
    while the engines build, when ready. Exit status and seconds from signal to exit."""
    from slimseg_ros.ros.client import NodeProcess, node_command

    rows = []
    for delay in args.delays:
        cache = tempfile.mkdtemp(prefix="slimseg_cold_")
        model = [f"model_path:={args.checkpoint}"] if args.checkpoint else []
        node = NodeProcess(node_command(params=[*model, f"backend:={args.backend}",
                                                f"engine_cache_dir:={cache}"]),
                           Path(cache) / "node.log", node_env(args))
        try:
            time.sleep(delay)
            log = node.log_text()
            phase = ("ready" if "ready:" in log else "building engines" if "model:" in log
                     else "starting (imports)")
            t0 = time.monotonic()
            node.send(signal.SIGTERM)
            code = node.wait(120)
            seconds = time.monotonic() - t0
        finally:
            node.stop()
        log = node.log_text()
        rows.append({"signal_after_s": delay, "phase": phase, "exit_code": code,
                     "exit_s": round(seconds, 2), "traceback": "Traceback" in log,
                     "abandoned_build": "not waiting for the engine build" in log})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"backend": args.backend, "runs": rows}


# -- answers after appearing ----------------------------------------------------------------------

def startup(args: argparse.Namespace) -> dict[str, Any]:
    """``--runs`` cold starts (empty engine cache, defaults: the shipped model, backend auto):
    seconds from the node appearing in the graph to its first answered parameter call. With
    ``--cli``: as a user sees it, ``ros2 node list`` until it lists the node, then
    ``ros2 param get`` (its wall time, the CLI's own start included)."""
    from slimseg_ros.ros.client import NodeProcess, Probe, node_command

    rows = []
    env = node_env(args)
    ros2 = Path(sys.prefix) / "bin" / "ros2"
    cli_env = dict(env, AMENT_PREFIX_PATH=sys.prefix)
    if args.cli:
        subprocess.run([str(ros2), "daemon", "start"], env=cli_env, capture_output=True)
    try:
        for run in range(args.runs):
            cache = tempfile.mkdtemp(prefix="slimseg_cold_")
            node = NodeProcess(node_command(params=[f"engine_cache_dir:={cache}"]),
                               Path(cache) / "node.log", env)
            try:
                t0 = time.monotonic()
                if args.cli:
                    row = _startup_cli(ros2, cli_env, t0)
                else:
                    with Probe(NODE, labels_topic=None) as probe:
                        row = _startup_probe(probe, t0)
                row["engines_ready_then"] = "ready:" in node.log_text()
            finally:
                node.stop()
            row["run"] = run + 1
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        if args.cli:
            subprocess.run([str(ros2), "daemon", "stop"], env=cli_env, capture_output=True)
    gaps = [r["answer_after_appearing_s"] for r in rows]
    return {"mode": "ros2 CLI" if args.cli else "DDS probe", "runs": rows,
            "within_2_s": sum(g is not None and g <= 2.0 for g in gaps), "of": len(rows),
            "max_s": max((g for g in gaps if g is not None), default=None)}


def _startup_probe(probe: Any, t0: float) -> dict[str, Any]:
    from slimseg_ros.ros.client import wait_until

    def listed() -> bool:
        return ("slimseg", "/") in probe.node.get_node_names_and_namespaces()
    wait_until(listed, 300.0, interval=0.01)
    appeared = time.monotonic()
    got = probe.get_parameters(["widths"], 120.0)
    answered = time.monotonic()
    return {"appeared_s": round(appeared - t0, 2), "answer_after_appearing_s":
            round(answered - appeared, 3), "widths": got.get("widths")}


def _startup_cli(ros2: Path, env: dict[str, str], t0: float) -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run([str(ros2), *args], env=env, capture_output=True, text=True,
                              timeout=120)
        return done.stdout + done.stderr
    while "/slimseg" not in run("node", "list").split():
        pass
    appeared = time.monotonic()
    out = run("param", "get", "/slimseg", "widths")
    answered = time.monotonic()
    run("param", "get", "/slimseg", "widths")  # the same call again: the CLI's own cost
    again = time.monotonic() - answered
    return {"appeared_s": round(appeared - t0, 2),
            "answer_after_appearing_s": round(answered - appeared, 3),
            "same_call_again_s": round(again, 3), "printed": out.strip()}


# -- command line ---------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    """A camera's WIDTHxHEIGHT (the first number is the width, as drivers name it)."""
    from slimseg_ros.sizes import parse_size

    return parse_size(text)


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "soak": soak, "burst": burst, "restart": restart, "sigterm": sigterm, "startup": startup,
    "camera": camera,
}


OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "soak": {"--minutes": {"type": float, "default": 10.0},
             "--rate": {"type": float, "default": 30.0}},
    "burst": {"--frames": {"type": int, "default": 500}},
    "restart": {"--seconds": {"type": float, "default": 30.0}},
    "sigterm": {"--delays": {"type": float, "nargs": "+",
                             "default": [0.5, 3.0, 8.0, 15.0, 40.0]}},
    "startup": {"--runs": {"type": int, "default": 20},
                "--cli": {"action": "store_true", "help": "measure with the real ros2 CLI"}},
    "camera": {"--reliability": {"choices": ("reliable", "best_effort"),
                                 "default": "reliable"},
               "--size": {"type": _size, "default": (640, 480)},
               "--rate": {"type": float, "default": 30.0},
               "--duration": {"type": float, "default": 60.0},
               "--first-stamp": {"type": int, "default": 1}},
}
"""Each command's own options (besides the common ones)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python experiments/reliability.py",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, options in OPTIONS.items():
        q = sub.add_parser(name, help=(COMMANDS[name].__doc__ or "").split("\n")[0])
        q.add_argument("--checkpoint", help="model (default: the shipped one)")
        q.add_argument("--backend", default="auto", help="node backend (default: auto)")
        q.add_argument("--no-profile", action="store_true",
                       help="Fast DDS defaults instead of config/fastdds_large_data.xml")
        q.add_argument("--out", type=Path, help="also write the JSON here")
        for flag, kwargs in options.items():
            q.add_argument(flag, **kwargs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.no_profile:  # this process publishes large frames too
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    if args.command == "camera" or args.command == "restart":
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    load_before = _load()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = COMMANDS[args.command](args)
    if args.command == "camera":
        return 0
    doc = {"command": args.command, "started_utc": started, "load_before": load_before,
           "load_after": _load(), "cores": os.cpu_count(), "result": result}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
