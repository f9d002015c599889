"""Node benchmarks over real DDS: the node in its own process, frames from this one.

    python experiments/bench_node.py overhead --frames 200 --camera 640x480
    python experiments/bench_node.py flat --duration 60 --rate 30 --camera 640x480 \\
        --input-size 360x480 --width 1.0
    python experiments/bench_node.py camera --rate 30 --camera 640x480 --duration 30 \\
        --camera-profile none            # a stock camera driver's process

``overhead``: this process publishes one rgb8 frame at a time (the node is idle when it arrives)
and times publish -> labels received. The node (run by this script's ``serve`` command) records
the runtime's inference time of every frame (matched by stamp), so the node's overhead is
``end-to-end - inference``; it is split into transport in, node work and transport out
(``time.monotonic`` is one clock for both processes).

``flat``: a camera publishes at ``--rate`` for ``--duration`` seconds while the node runs a
model slower than the camera (pinned width); latency per 10 s window shows whether frames queue
up (they must not: latest frame wins) and the counts show how many frames were dropped.

``camera``: the camera is a process of its own, as a camera driver is, with its own transport
set-up (``--camera-profile``, ``--camera-env``, ``--reliability``, ``--transport``) and the node
as ``seg.launch.py`` starts it (operating points, adaptive, the package's Fast DDS profile unless
``--node-profile`` says otherwise). The camera process times publish -> labels received itself
(one clock) and reads the node's statuses: answered share, latency p50/p95, the operating points
in use, the frames the node counted lost before it and when it first warned of them
(docs/log/transport.md has the table).

Camera sizes are WIDTHxHEIGHT (camera modes); ``--input-size`` is HxW (as ``slimseg bench``).
The node is started and probed with :mod:`slimseg_ros.ros.client`; results are measurements
(docs/log/node.md), not pass/fail checks.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from slimseg_ros.sizes import parse_size

SCRIPT = Path(__file__).resolve()
TOPIC = "/camera/image_raw"


def _camera_size(text: str) -> tuple[int, int]:
    """A camera's WIDTHxHEIGHT (as drivers name it): the reverse of the package's HxW."""
    try:
        return parse_size(text)  # two positive numbers; here the first is the width
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x480, got {text!r}"
                                         ) from None


def _input_size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _percentiles(seconds: list[float]) -> dict[str, float | None]:
    from slimseg_ros.runtime.timing import percentile_ms

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {"p50_ms": rounded(percentile_ms(seconds, 50)),
            "p95_ms": rounded(percentile_ms(seconds, 95)),
            "mean_ms": rounded(float(np.mean(seconds)) * 1e3 if seconds else None)}


# -- serve: the node with per-frame timings --------------------------------------------------

def _serve(args: argparse.Namespace, ros_args: list[str]) -> int:
    from slimseg_ros.ros.node import FrameTiming, run

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


def _read_timings(path: Path) -> dict[int, dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["stamp"]] = row
    return rows


# -- the node under benchmark ---------------------------------------------------------------

def _frame(size: tuple[int, int], stamp: int) -> Any:
    from slimseg_ros.ros.conversions import make_header, make_image

    w, h = size
    rgb = np.random.default_rng(stamp % 1000).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return make_image(rgb, "rgb8", make_header(stamp, "camera"))


def _model(args: argparse.Namespace, workdir: Path) -> tuple[str, str]:
    """(checkpoint path, description): the given one, the shipped one, or a random stand-in."""
    from slimseg_ros.model.checkpoint import save_random_checkpoint
    from slimseg_ros.runtime import default_model_path

    if args.checkpoint:
        return args.checkpoint, args.checkpoint
    shipped = default_model_path()
    if shipped is not None:
        return str(shipped), str(shipped)
    size = args.input_size or (360, 480)
    path = save_random_checkpoint(workdir / "random.safetensors", input_size=size)
    return str(path), f"random SlimSeg (no trained model installed), {size[0]}x{size[1]}"


def _node_params(args: argparse.Namespace, checkpoint: str) -> list[str]:
    params = [f"model_path:={checkpoint}", "input_reliability:=reliable",
              f"backend:={args.backend}"]
    if args.input_size:
        params.append(f"input_size:=[{args.input_size[0]},{args.input_size[1]}]")
    if args.width is not None:
        params += [f"width:={args.width}", "adaptive:=false"]
    return params


@dataclasses.dataclass
class _NodeRun:
    """A node under benchmark: this process's probe and camera, where the node writes, how it
    ended."""

    probe: Any
    camera: Any
    model: str
    workdir: Path
    exit_code: int | None = None

    @property
    def timings(self) -> Path:
        return self.workdir / "timings.jsonl"


@contextlib.contextmanager
def _running_node(args: argparse.Namespace) -> Iterator[_NodeRun]:
    """Start the node in its own process and wait until it answers; stop both sides after.

    The Fast DDS profile, if any, applies to the node and to this process alike.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from slimseg_ros.ros.client import NodeProcess, Probe, node_command

    env = dict(os.environ)
    if args.fastdds_profile and args.fastdds_profile != "none":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(args.fastdds_profile).resolve())
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="slimseg_bench_"))
    checkpoint, model = _model(args, workdir)
    serve = [sys.executable, str(SCRIPT), "serve", "--timings", str(workdir / "timings.jsonl"),
             "--"]
    cmd = node_command(executable=serve, remaps=[f"image:={TOPIC}"],
                       params=_node_params(args, checkpoint))
    node = NodeProcess(cmd, workdir / "node.log", env)
    probe = Probe("/slimseg", labels_topic="/labels", labels_qos=10, keep_labels=None,
                  probe_name="slimseg_bench")
    camera = probe.publisher(Image, TOPIC,
                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    run = _NodeRun(probe, camera, model, workdir)
    try:
        _wait_ready(run, args.camera, node.problem)
        yield run
    finally:
        probe.close()
        run.exit_code = node.stop(30.0)


def _wait_ready(run: _NodeRun, size: tuple[int, int], problem: Any,
                timeout: float = 120.0) -> None:
    """Publish until the node answers (it is up and the reliable subscription matched)."""
    deadline = time.monotonic() + timeout
    stamp = 1
    while time.monotonic() < deadline:
        if problem():
            raise SystemExit(problem())
        run.camera.publish(_frame(size, stamp))
        if run.probe.labels.wait_for_stamp(stamp, 1.0) is not None:
            return
        stamp += 1
    raise SystemExit(f"the node did not answer within {timeout:.0f} s (see its log)")


# -- the benchmarks ------------------------------------------------------------------------

def _overhead(args: argparse.Namespace) -> dict[str, Any]:
    sent: dict[int, float] = {}
    with _running_node(args) as run:
        base = 1_000_000_000
        for i in range(args.warmup + args.frames):
            stamp = base + i
            msg = _frame(args.camera, stamp)
            t_pub = time.monotonic()
            run.camera.publish(msg)
            if run.probe.labels.wait_for_stamp(stamp, 10.0) is None:
                print(f"frame {i}: no labels within 10 s", file=sys.stderr)
            if i >= args.warmup:
                sent[stamp] = t_pub
            time.sleep(args.gap)
        arrivals = run.probe.labels.arrival_of(sent)
    rows = _read_timings(run.timings)
    e2e, inference, overhead, t_in, work, t_out = [], [], [], [], [], []
    for stamp, t_pub in sent.items():
        arrived, row = arrivals.get(stamp), rows.get(stamp)
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
    from slimseg_ros.data.stamps import split_ns

    sent: dict[int, float] = {}
    with _running_node(args) as run:
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
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(stamp)
            sent[stamp] = time.monotonic()
            run.camera.publish(msg)
            i += 1
        # a status made a second after the last frame counts everything still in flight
        status = run.probe.fresh_status(time.time() + 1.0, 5.0) or run.probe.status()
        arrivals = run.probe.labels.arrival_of(sent)
    rows = _read_timings(run.timings)
    t0 = min(sent.values())
    windows: dict[int, list[float]] = {}
    inference = []
    for stamp, t_pub in sent.items():
        arrived = arrivals.get(stamp)
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


_SYSCTLS = ("net.core.rmem_default", "net.core.rmem_max", "net.core.wmem_default",
            "net.core.wmem_max", "net.ipv4.ipfrag_time", "net.ipv4.ipfrag_high_thresh")


def _sysctls() -> dict[str, str]:
    """The kernel's socket-buffer and IP-fragment settings this run had (they are machine-wide,
    and the ROS 2 docs recommend raising them for large messages)."""
    values = {}
    for name in _SYSCTLS:
        try:
            values[name] = Path("/proc/sys", *name.split(".")).read_text().strip()
        except OSError:
            values[name] = "unreadable"
    return values


def _profile_path(choice: str) -> str | None:
    """``package`` -> the package's Fast DDS profile, ``none`` -> None, else the path given."""
    if choice == "none":
        return None
    if choice == "package":
        return str(Path(__file__).resolve().parents[1] / "config" / "fastdds_large_data.xml")
    return str(Path(choice).resolve())


def _assignments(items: list[str]) -> dict[str, str]:
    """NAME=VALUE items (``--camera-env``, ``--node-env``) as a dict."""
    pairs = dict(item.partition("=")[::2] for item in items)
    if "" in pairs:
        raise SystemExit("environment items must be NAME=VALUE")
    return pairs


def _camera_bench(args: argparse.Namespace) -> dict[str, Any]:
    import subprocess

    from slimseg_ros.ros.client import NodeProcess, node_command

    workdir = Path(tempfile.mkdtemp(prefix="slimseg_camera_bench_"))
    checkpoint, model = _model(args, workdir)
    node_env = dict(os.environ)
    node_env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if (profile := _profile_path(args.node_profile)) is not None:
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    if args.threads:
        node_env["OMP_NUM_THREADS"] = str(args.threads)
    node_env.update(_assignments(args.node_env))
    sizes = ",".join(f"{h},{w}" for h, w in args.input_sizes)
    params = [f"model_path:={checkpoint}", f"backend:={args.backend}",
              f"input_sizes:=[{sizes}]", f"target_fps:={args.rate:g}", "adaptive:=true",
              f"input_transport:={args.transport}"]
    cmd = node_command(params_file=Path(__file__).resolve().parents[1] / "config" /
                       "slimseg.yaml", remaps=[f"image:={TOPIC}"], params=params)
    camera_env = dict(os.environ)
    camera_env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if (profile := _profile_path(args.camera_profile)) is not None:
        camera_env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    camera_env.update(_assignments(args.camera_env))
    camera = [sys.executable, str(SCRIPT), "camera-process", "--rate", str(args.rate),
              "--duration", str(args.duration), "--camera", "x".join(map(str, args.camera)),
              "--encoding", args.encoding, "--reliability", args.reliability,
              "--transport", args.transport]
    with NodeProcess(cmd, workdir / "node.log", node_env) as node:
        done = subprocess.run(camera, env=camera_env, capture_output=True, text=True,
                              timeout=args.duration + 300)
        exit_code = node.stop(30.0)
    if done.returncode != 0:
        raise SystemExit(f"camera process failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"benchmark": "camera process", "camera": list(args.camera), "rate_hz": args.rate,
            "encoding": args.encoding, "reliability": args.reliability,
            "transport": args.transport, "camera_profile": args.camera_profile,
            "camera_env": list(args.camera_env), "node_profile": args.node_profile,
            "node_env": list(args.node_env),
            "input_sizes": [list(s) for s in args.input_sizes], "model": model,
            "sysctl": _sysctls(), **result, "node_exit_code": exit_code,
            "node_log": str(workdir / "node.log")}


def _camera_process(args: argparse.Namespace) -> int:
    """The camera side of ``camera``: stream, time the answers, read the node's statuses."""
    from collections import Counter

    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from slimseg_ros.data.stamps import split_ns
    from slimseg_ros.ros.conversions import make_compressed, make_header, make_image
    from slimseg_ros.ros.client import Probe, wait_until

    policy = (ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    compressed = args.transport == "compressed"
    rgb = _camvid_frame(args.camera)
    with Probe("/slimseg", labels_topic="/labels", labels_qos=10, keep_labels=None,
               probe_name="slimseg_bench_camera") as probe:
        topic = TOPIC + "/compressed" if compressed else TOPIC
        pub = probe.publisher(CompressedImage if compressed else Image, topic,
                              QoSProfile(depth=1, reliability=policy))
        probe.wait_started(300.0)
        wait_until(lambda: pub.get_subscription_count() > 0, 30.0)
        time.sleep(2.0)  # the node's QoS choice settles on this publisher (input_reliability auto)
        header = make_header(0, "camera")
        msg = (make_compressed(rgb, "jpeg", header) if compressed
               else make_image(rgb, args.encoding, header))
        sent: dict[int, float] = {}
        period = 1.0 / args.rate
        start = time.monotonic()
        wall_start = time.time()
        i = 0
        while i * period < args.duration:
            due = start + i * period
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            stamp = 9_000_000_000 + i
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(stamp)
            sent[stamp] = time.monotonic()
            pub.publish(msg)
            i += 1
        last = probe.fresh_status(time.time() + 1.0, 5.0) or probe.status()
        arrivals = probe.labels.arrival_of(sent)
        statuses = [(made, v) for _, made, v in probe.statuses() if made >= wall_start]
    latencies = [arrivals[s] - t for s, t in sent.items() if s in arrivals]
    points = Counter(v.get("operating_point", "?") for _, v in statuses)
    warned = next((made - wall_start for made, v in statuses
                   if float(v.get("lost_fraction_recent", "nan") or "nan") >= 0.1), None)
    print(json.dumps({
        "sent": len(sent), "answered": len(latencies),
        "answered_share": round(len(latencies) / max(len(sent), 1), 4),
        "latency": _percentiles(latencies),
        "operating_points_seconds": dict(points.most_common()),
        "node_lost_frames": last.get("lost_frames"),
        "node_lost_in_transport_frames": last.get("lost_in_transport_frames"),
        "node_dropped_frames": last.get("dropped_frames"),
        "loss_warning_after_s": None if warned is None else round(warned, 1),
        "node_input_reliability": last.get("input_reliability"),
        "message_bytes": len(msg.data)}), flush=True)
    return 0


def _camvid_frame(size: tuple[int, int]) -> Any:
    """A real street frame (the package's CamVid sample) at the camera's size: JPEG sizes and
    labels as a camera's, not as noise's."""
    import cv2

    sample = sorted((Path(__file__).resolve().parents[1] / "slimseg_ros" / "assets" /
                     "camvid_sample" / "val").glob("*.png"))[0]
    rgb = cv2.cvtColor(cv2.imread(str(sample)), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def _table(result: dict[str, Any]) -> str:
    if result["benchmark"] == "camera process":
        lat = result["latency"]
        after = result["loss_warning_after_s"]
        return ("| camera | answered | latency p50 / p95 ms | lost (node) | loss reported after "
                "| points |\n| --- | --- | --- | --- | --- | --- |\n"
                f"| {result['camera'][0]}x{result['camera'][1]} {result['encoding']} "
                f"{result['reliability']} {result['transport']} @ {result['rate_hz']:g} Hz, "
                f"camera profile {result['camera_profile']} | {result['answered_share']:.1%} | "
                f"{lat['p50_ms']} / {lat['p95_ms']} | {result['node_lost_frames']} | "
                f"{'-' if after is None else f'{after} s'} | "
                f"{result['operating_points_seconds']} |")
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
    p = argparse.ArgumentParser(prog="python experiments/bench_node.py",
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

    def camera_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--camera", type=_camera_size, default=(640, 480),
                       help="camera frame size WIDTHxHEIGHT (default 640x480)")
        q.add_argument("--rate", type=float, default=30.0)
        q.add_argument("--duration", type=float, default=30.0)
        q.add_argument("--encoding", default="rgb8", help="raw encoding (default rgb8)")
        q.add_argument("--reliability", choices=("best_effort", "reliable"),
                       default="best_effort")
        q.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                       help="compressed: JPEG on image/compressed, the node's "
                       "input_transport compressed")

    q = sub.add_parser("camera", help="a camera process of its own against the node")
    camera_options(q)
    q.add_argument("--camera-profile", default="none",
                   help="the camera process's Fast DDS profile: none (default, a stock "
                   "driver), package, or a path")
    q.add_argument("--camera-env", action="append", default=[], metavar="NAME=VALUE",
                   help="more environment for the camera process (repeatable)")
    q.add_argument("--node-profile", default="package",
                   help="the node's profile: package (default, as seg.launch.py), none, a path")
    q.add_argument("--node-env", action="append", default=[], metavar="NAME=VALUE",
                   help="more environment for the node process (repeatable)")
    q.add_argument("--input-sizes", default="360x480,270x360,180x240",
                   type=lambda t: [_input_size(v) for v in t.split(",")],
                   help="the node's operating-point sizes HxW,HxW,...")
    q.add_argument("--checkpoint", help="model; default: the shipped one")
    q.add_argument("--backend", default="auto")
    q.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the node process")
    q.add_argument("--json", help="also write the result here")
    q.set_defaults(input_size=None)  # the random stand-in model's size when none is shipped

    q = sub.add_parser("camera-process", help="the camera side of `camera` (internal)")
    camera_options(q)

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
    if args.command == "camera-process":
        return _camera_process(args)
    result = {"overhead": _overhead, "flat": _flat, "camera": _camera_bench}[args.command](args)
    print(_table(result))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
