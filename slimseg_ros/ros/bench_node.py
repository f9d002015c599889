"""Node benchmarks over real DDS (issue 4, item 5), plus a test camera.

    python -m slimseg_ros.ros.bench_node overhead --frames 200 --camera 640x480
    python -m slimseg_ros.ros.bench_node flat --duration 60 --rate 30 --camera 640x480 \\
        --input-size 360x480 --width 1.0
    python -m slimseg_ros.ros.bench_node camera --camera 1280x720 --rate 10 --count 20 \\
        --reliability best_effort --topic /camera/image_raw

``overhead``: the node runs in its own process; this process publishes one rgb8 frame at a time
(the node is idle when it arrives) and times publish -> labels received. The node reports the
runtime's inference time of every frame (matched by stamp), so the node's overhead is
``end-to-end - inference``; it is split into transport in, node work and transport out
(``time.monotonic`` is one clock for both processes).

``flat``: a camera publishes at ``--rate`` for ``--duration`` seconds while the node runs a
model slower than the camera (pinned width); latency per 10 s window shows whether frames queue
up (they must not: latest frame wins) and the counts show how many frames were dropped.

Camera sizes are WIDTHxHEIGHT (camera modes); ``--input-size`` is HxW (as ``slimseg bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["main"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _camera_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x480, got {text!r}")
    return w, h


def _input_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 360x480, got {text!r}")
    return h, w


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None}
    a = np.asarray(values) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "mean_ms": round(float(a.mean()), 2)}


# -- serve: the node with per-frame timings --------------------------------------------------

def _serve(args: argparse.Namespace, ros_args: list[str]) -> int:
    from .node import FrameTiming, run

    out = open(args.timings, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def record(t: FrameTiming) -> None:
        out.write(json.dumps({"stamp": t.stamp_ns, "received": t.received, "started": t.started,
                              "inference_s": t.inference_s, "published": t.published,
                              "width": t.width}) + "\n")
        out.flush()

    try:
        return run([sys.argv[0], *ros_args], frame_observer=record)
    finally:
        out.close()


def _start_node(timings: Path, ros_params: list[str], env: dict[str, str],
                log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "slimseg_ros.ros.bench_node", "serve", "--timings", str(timings),
           "--", "--ros-args", "-r", "image:=/camera/image_raw",
           *sum((["-p", p] for p in ros_params), [])]
    with open(log, "wb") as stream:
        return subprocess.Popen(cmd, env=env, stdout=stream, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _read_timings(path: Path) -> dict[int, dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["stamp"]] = row
    return rows


class _Harness:
    """rclpy in this process: a probe node spinning in a thread, a camera publisher and a
    labels subscriber that notes when each stamp arrived."""

    def __init__(self, reliability: str = "reliable") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from .harness import stamp_ns

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node("slimseg_bench")
        policy = (ReliabilityPolicy.RELIABLE if reliability == "reliable"
                  else ReliabilityPolicy.BEST_EFFORT)
        self.image_pub = self.node.create_publisher(
            Image, "/camera/image_raw", QoSProfile(depth=1, reliability=policy))
        self.arrivals: dict[int, float] = {}
        self.cond = threading.Condition()

        def on_labels(msg: Image) -> None:
            now = time.monotonic()
            with self.cond:
                self.arrivals[stamp_ns(msg.header)] = now
                self.cond.notify_all()

        self.node.create_subscription(Image, "/labels", on_labels, QoSProfile(depth=10))
        self.status: dict[str, str] = {}

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for s in msg.status:
                if s.name.endswith(": segmentation"):
                    self.status = {kv.key: kv.value for kv in s.values}

        self.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait_arrival(self, stamp: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while stamp not in self.arrivals:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)
            return self.arrivals[stamp]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def _frame(size: tuple[int, int], stamp: int) -> Any:
    from .harness import make_header, make_image

    w, h = size
    rng = np.random.default_rng(stamp % 1000)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return make_image(rgb, "rgb8", make_header(stamp, "camera"))


def _model(args: argparse.Namespace, workdir: Path) -> tuple[str, str]:
    """(checkpoint path, description): the given one, the shipped one, or a random stand-in."""
    from ..runtime import default_model_path
    from .harness import make_test_checkpoint

    if args.checkpoint:
        return args.checkpoint, args.checkpoint
    shipped = default_model_path()
    if shipped is not None:
        return str(shipped), str(shipped)
    size = args.input_size or (360, 480)
    path = make_test_checkpoint(workdir / "random.safetensors", input_size=size, num_classes=11)
    return str(path), f"random SlimSeg (no trained model installed), {size[0]}x{size[1]}"


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    profile = args.fastdds_profile
    if profile and profile != "none":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(profile).resolve())
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def _node_params(args: argparse.Namespace, checkpoint: str, width: float | None) -> list[str]:
    params = [f"model_path:={checkpoint}", "input_reliability:=reliable",
              f"backend:={args.backend}"]
    if args.input_size:
        params.append(f"input_size:=[{args.input_size[0]},{args.input_size[1]}]")
    if width is not None:
        params += [f"width:={width}", "adaptive:=false"]
    return params


def _wait_ready(h: _Harness, size: tuple[int, int], timeout: float = 120.0) -> None:
    """Publish until the node answers (it is up and the reliable subscription matched)."""
    deadline = time.monotonic() + timeout
    stamp = 1
    while time.monotonic() < deadline:
        h.image_pub.publish(_frame(size, stamp))
        if h.wait_arrival(stamp, 1.0) is not None:
            return
        stamp += 1
    raise SystemExit("the node did not answer within 120 s (see its log)")


@dataclasses.dataclass
class _NodeRun:
    """A node under benchmark: this process's harness, where the node writes, how it ended."""

    harness: _Harness
    model: str
    workdir: Path
    exit_code: int | None = None

    @property
    def timings(self) -> Path:
        return self.workdir / "timings.jsonl"


@contextlib.contextmanager
def _running_node(args: argparse.Namespace) -> Iterator[_NodeRun]:
    """Start the node in its own process and wait until it answers; stop both sides after.

    The Fast DDS profile, if any, applies to the node and to this process's harness alike.
    """
    if args.fastdds_profile and args.fastdds_profile != "none":
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(args.fastdds_profile).resolve())
    workdir = Path(tempfile.mkdtemp(prefix="slimseg_bench_"))
    checkpoint, model = _model(args, workdir)
    proc = _start_node(workdir / "timings.jsonl", _node_params(args, checkpoint, args.width),
                       _env(args), workdir / "node.log")
    run = _NodeRun(_Harness("reliable"), model, workdir)
    try:
        _wait_ready(run.harness, args.camera)
        yield run
    finally:
        run.harness.close()
        run.exit_code = _stop(proc)


def _overhead(args: argparse.Namespace) -> dict[str, Any]:
    sent: dict[int, float] = {}
    with _running_node(args) as run:
        h = run.harness
        base = 1_000_000_000
        for i in range(args.warmup + args.frames):
            stamp = base + i
            msg = _frame(args.camera, stamp)
            t_pub = time.monotonic()
            h.image_pub.publish(msg)
            if h.wait_arrival(stamp, 10.0) is None:
                print(f"frame {i}: no labels within 10 s", file=sys.stderr)
            if i >= args.warmup:
                sent[stamp] = t_pub
            time.sleep(args.gap)
    rows = _read_timings(run.timings)
    e2e, inference, overhead, t_in, work, t_out = [], [], [], [], [], []
    for stamp, t_pub in sent.items():
        arrived = h.arrivals.get(stamp)
        row = rows.get(stamp)
        if arrived is None or row is None:
            continue
        total = arrived - t_pub
        e2e.append(total)
        inference.append(row["inference_s"])
        overhead.append(total - row["inference_s"])
        t_in.append(row["received"] - t_pub)
        work.append(row["published"] - row["received"] - row["inference_s"])
        t_out.append(arrived - row["published"])
    return {
        "benchmark": "node overhead", "camera": list(args.camera), "encoding": "rgb8",
        "model": run.model, "frames": len(sent), "answered": len(e2e),
        "fastdds_profile": args.fastdds_profile, "node_exit_code": run.exit_code,
        "end_to_end": _percentiles(e2e), "inference": _percentiles(inference),
        "overhead": _percentiles(overhead),
        "overhead_parts": {"transport_in": _percentiles(t_in), "node_work": _percentiles(work),
                           "transport_out": _percentiles(t_out)},
        "node_log": str(run.workdir / "node.log"),
    }


def _flat(args: argparse.Namespace) -> dict[str, Any]:
    sent: dict[int, float] = {}
    with _running_node(args) as run:
        h = run.harness
        frames = [_frame(args.camera, s) for s in range(8)]  # made up front: camera is cheap
        period = 1.0 / args.rate
        start = time.monotonic()
        i = 0
        while True:
            due = start + i * period
            now = time.monotonic()
            if due - start >= args.duration:
                break
            if due > now:
                time.sleep(due - now)
            stamp = 2_000_000_000 + i
            msg = frames[i % len(frames)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            sent[stamp] = time.monotonic()
            h.image_pub.publish(msg)
            i += 1
        time.sleep(2.5)  # let the last frame's labels and a status after it arrive
        status = dict(h.status)
    rows = _read_timings(run.timings)
    t0 = min(sent.values())
    windows: dict[int, list[float]] = {}
    inference = []
    for stamp, t_pub in sent.items():
        arrived = h.arrivals.get(stamp)
        if arrived is not None:
            windows.setdefault(int((t_pub - t0) // 10), []).append(arrived - t_pub)
            if stamp in rows:
                inference.append(rows[stamp]["inference_s"])
    answered = sum(len(v) for v in windows.values())
    return {
        "benchmark": "latency under a camera faster than the model", "camera": list(args.camera),
        "rate_hz": args.rate, "duration_s": args.duration, "model": run.model, "width": args.width,
        "sent": len(sent), "answered": answered, "not_answered": len(sent) - answered,
        "node_status": {k: status.get(k) for k in (
            "received_frames", "processed_frames", "dropped_frames", "rejected_frames",
            "input_fps", "output_fps", "latency_p50_ms", "latency_p95_ms", "width")},
        "inference": _percentiles(inference), "node_exit_code": run.exit_code,
        "windows": [{"from_s": k * 10, "to_s": k * 10 + 10, "answered": len(v),
                     **_percentiles(v)} for k, v in sorted(windows.items())],
        "node_log": str(run.workdir / "node.log"),
    }


def _camera(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("slimseg_test_camera")
    policy = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(Image, args.topic, QoSProfile(depth=1, reliability=policy))
    deadline = time.monotonic() + args.wait_subscriber
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    matched = pub.get_subscription_count()
    time.sleep(1.0)  # discovery is two-way: give the subscriber time to know this writer too
    for i in range(args.count):
        pub.publish(_frame(args.camera, args.first_stamp + i))
        time.sleep(1.0 / args.rate)
    time.sleep(0.5)
    print(json.dumps({"published": args.count, "matched_subscriptions": matched}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _table(result: dict[str, Any]) -> str:
    if result["benchmark"] == "node overhead":
        lines = ["| quantity | p50 ms | p95 ms |", "| --- | --- | --- |"]
        rows = [("end to end (publish -> labels received)", result["end_to_end"]),
                ("runtime inference", result["inference"]),
                ("**node overhead** (end to end - inference)", result["overhead"])]
        rows += [(f"  of which {k.replace('_', ' ')}", v)
                 for k, v in result["overhead_parts"].items()]
        lines += [f"| {name} | {v['p50_ms']} | {v['p95_ms']} |" for name, v in rows]
        return "\n".join(lines)
    lines = ["| window | answered | latency p50 ms | latency p95 ms |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {w['from_s']}-{w['to_s']} s | {w['answered']} | {w['p50_ms']} | {w['p95_ms']} |"
              for w in result["windows"]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m slimseg_ros.ros.bench_node",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def model_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--camera", type=_camera_size, default=(640, 480),
                       help="camera frame size WIDTHxHEIGHT (default 640x480)")
        q.add_argument("--checkpoint", help="model; default: the shipped one, else a random "
                       "stand-in (latency does not depend on weights)")
        q.add_argument("--input-size", type=_input_size, help="network input HxW")
        q.add_argument("--backend", default="auto", help="node backend (default auto)")
        q.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the node process")
        q.add_argument("--json", help="also write the result here")
        q.add_argument("--fastdds-profile", default="none",
                       help="Fast DDS XML profile for both processes (default none)")

    q = sub.add_parser("overhead", help="node overhead beyond inference at one frame at a time")
    model_options(q)
    q.add_argument("--frames", type=int, default=200)
    q.add_argument("--warmup", type=int, default=20)
    q.add_argument("--gap", type=float, default=0.05, help="idle seconds between frames")
    q.add_argument("--width", type=float, default=0.25, help="pinned width (default 0.25)")

    q = sub.add_parser("flat", help="latency over time with a camera faster than the model")
    model_options(q)
    q.add_argument("--duration", type=float, default=60.0)
    q.add_argument("--rate", type=float, default=30.0)
    q.add_argument("--width", type=float, default=1.0, help="pinned width (default 1.0)")

    q = sub.add_parser("camera", help="publish test frames (used by the tests)")
    q.add_argument("--camera", type=_camera_size, default=(640, 480))
    q.add_argument("--topic", default="/camera/image_raw")
    q.add_argument("--rate", type=float, default=5.0)
    q.add_argument("--count", type=int, default=10)
    q.add_argument("--first-stamp", type=int, default=3_000_000_000)
    q.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    q.add_argument("--wait-subscriber", type=float, default=20.0)

    q = sub.add_parser("serve", help="run the node, writing per-frame timings (internal)")
    q.add_argument("--timings", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, ros_args = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args, ros_args)
    if args.command == "camera":
        return _camera(args)
    result = _overhead(args) if args.command == "overhead" else _flat(args)
    print(_table(result))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
