"""``slimseg bag make`` and ``slimseg bag eval``: rosbag2 from a dataset, and evaluation of a bag
offline (every width on every frame) or through the node (replayed over DDS)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..widths import parse_widths
from .common import add_backend_args, write_json
from .main import UserError


def command_line() -> str | None:
    """The command as typed, for the report (None when not run as the ``slimseg`` script)."""
    if not sys.argv or not Path(sys.argv[0]).name.startswith("slimseg"):
        return None
    return "slimseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])

__all__ = ["register", "run_make", "run_eval", "parse_param_event", "command_line"]

_EVAL_EPILOG = """\
examples:
  slimseg bag eval --bag camvid_val --mode offline --report out/offline
  slimseg bag eval --bag camvid_val --mode replay --target-fps 10 --report out/replay
  slimseg bag eval --bag recorded --mode replay --image-topic /cam/image_raw/compressed \\
      --label-topic /cam/gt --set 20:target_fps=15 --battery 1.0:0.1
  slimseg bag eval --bag camvid_val --mode replay --running-node --node-name /slimseg

replay: the node is started with the checkpoint (slimseg_node, adaptive unless
--width pins it) and wired to the bag's topics, or --running-node uses one that runs already
(its image input must be the bag's image topic). Frames go out at the recorded rate x --speed
over DDS, reliable, with the bag's battery messages (or --battery's); answers are matched to
frames by header stamp. Outputs: frames sent/processed, dropped frames, end-to-end latency,
the width timeline and mIoU per width used.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bag",
        help="make rosbags from datasets; evaluate bags offline or through the node",
        description="Rosbag2 tools (mcap or sqlite3, readable by `ros2 bag` on Humble and "
        "Jazzy): `bag make` writes dataset frames as a camera stream with ground-truth labels; "
        "`bag eval` scores a model on a bag offline or by replaying it through the node.",
    )
    sub = p.add_subparsers(dest="bag_command", metavar="{make,eval}")
    sub.required = True
    _register_make(sub)
    _register_eval(sub)


def _register_make(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make", help="write dataset frames as a rosbag2 camera stream with labels",
        description="Write the frames of a dataset split, in order, as a rosbag2: "
        "/camera/image_raw (sensor_msgs/Image rgb8, or CompressedImage on .../compressed), "
        "/camera/labels (mono8 class ids, 255 = ignore, the same stamps), "
        "/camera/camera_info (uncalibrated) and optionally /battery_state draining linearly.",
        epilog="example: slimseg bag make --dataset camvid --data-root data/camvid "
        "--split val --out camvid_val --rate 10 --battery 1.0:0.1",
    )
    p.add_argument("--dataset", required=True, help="camvid | cityscapes | folder | synthetic")
    p.add_argument("--data-root", default=None, help="dataset root directory")
    p.add_argument("--split", default="val", help="split name (default: val)")
    p.add_argument("--classes", default=None, help="classes YAML (folder datasets)")
    p.add_argument("--out", required=True, help="bag directory to create")
    p.add_argument("--rate", type=float, default=10.0, metavar="HZ",
                   help="frames per second of the stream (default: 10)")
    p.add_argument("--battery", default=None, metavar="START:END",
                   help="add /battery_state draining linearly, fractions, e.g. 1.0:0.1")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                   help="rosbag2 storage plugin (default: mcap)")
    p.add_argument("--compressed", choices=("jpeg", "png"), default=None,
                   help="store images as sensor_msgs/CompressedImage on "
                   "/camera/image_raw/compressed (jpeg is lossy)")
    p.add_argument("--no-camera-info", action="store_true", help="leave out /camera/camera_info")
    p.add_argument("--start", type=int, default=0, help="first frame index (default: 0)")
    p.add_argument("--limit", type=int, default=0, help="at most N frames (default: all)")
    p.add_argument("--frame-id", default="camera", help="header.frame_id (default: camera)")
    p.add_argument("--distro", choices=("humble", "jazzy"), default="humble",
                   help="typestore of the message definitions (default: humble; the types "
                   "used are identical in Jazzy)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    p.set_defaults(func=run_make)


def _register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score a model on a bag, offline or replayed through the node",
        description="Evaluate a checkpoint on the labelled frames of a rosbag2.\n"
        "  --mode offline: every width on every frame (no ROS needed; the numbers equal\n"
        "      `slimseg eval` on the same frames).\n"
        "  --mode replay: play the bag through the slimseg node over DDS and measure what a\n"
        "      robot gets: frames processed and dropped, end-to-end latency, the width used\n"
        "      per frame and mIoU per width used.",
        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bag", required=True, help="rosbag2 directory (mcap or sqlite3)")
    p.add_argument("--checkpoint", default=None,
                   help="model .safetensors (default: the shipped model)")
    p.add_argument("--mode", choices=("offline", "replay"), default="offline",
                   help="offline (default) or replay")
    p.add_argument("--json", dest="json_out", default=None, help="write metrics JSON here")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write metrics.json, report.md and PNG plots into DIR")
    topics = p.add_argument_group("topics (default: /camera/image_raw[/compressed], "
                                  "/camera/labels, the only BatteryState topic)")
    topics.add_argument("--image-topic", default=None, help="camera images in the bag")
    topics.add_argument("--label-topic", default=None, help="ground-truth label images")
    topics.add_argument("--battery-topic", default=None, help="sensor_msgs/BatteryState")
    off = p.add_argument_group("model and backend (offline; a started node gets the backend "
                               "settings too)")
    off.add_argument("--widths", default="all", help="'all' or a comma list, e.g. 0.25,1.0")
    add_backend_args(off, default_backend="torch")
    rep = p.add_argument_group("replay")
    rep.add_argument("--speed", type=float, default=1.0,
                     help="playback rate factor (default: 1.0 = recorded rate)")
    rep.add_argument("--loops", type=int, default=1, help="play the bag N times (default: 1)")
    rep.add_argument("--width", type=float, default=None,
                     help="pin this width (adaptive off); default: adaptive")
    rep.add_argument("--target-fps", type=float, default=None,
                     help="the node's target_fps (default: the node's own default)")
    rep.add_argument("--battery", default=None, metavar="START:END",
                     help="publish a battery draining over the replay instead of the bag's")
    rep.add_argument("--set", dest="param_events", action="append", default=[],
                     metavar="T:NAME=VALUE",
                     help="set a node parameter T seconds into the replay, e.g. "
                     "10:target_fps=15 (repeatable)")
    rep.add_argument("--param", dest="node_params", action="append", default=[],
                     metavar="NAME=VALUE", help="extra start-up parameter of the node "
                     "(repeatable), e.g. min_dwell_s=1.0")
    rep.add_argument("--running-node", action="store_true",
                     help="use a node that is already running instead of starting one")
    rep.add_argument("--node-name", default="/slimseg", help="the node (default: /slimseg)")
    rep.add_argument("--labels-topic", default="/labels",
                     help="where the node publishes labels (default: /labels)")
    rep.add_argument("--domain-id", type=int, default=None,
                     help="ROS_DOMAIN_ID for the replay and the started node")
    rep.add_argument("--startup-timeout", type=float, default=180.0,
                     help="seconds the node may take to load and warm up (default: 180)")
    rep.add_argument("--settle", type=float, default=3.0,
                     help="seconds to wait for answers after the last frame (default: 3)")
    p.set_defaults(func=run_eval)


# -- helpers -----------------------------------------------------------------------------------

def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_param_event(text: str) -> tuple[float, str, Any]:
    """``"10:target_fps=15"`` -> (10.0, "target_fps", 15)."""
    try:
        when, assignment = text.split(":", 1)
        name, value = assignment.split("=", 1)
        t = float(when)
    except ValueError:
        raise UserError(f"--set expects T:NAME=VALUE such as 10:target_fps=15, got {text!r}")
    if t < 0 or not name.strip():
        raise UserError(f"--set needs a time >= 0 and a parameter name, got {text!r}")
    return t, name.strip(), _parse_value(value.strip())


def _parse_node_param(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UserError(f"--param expects NAME=VALUE such as min_dwell_s=1.0, got {text!r}")
    return name.strip(), _parse_value(value.strip())


def _checkpoint(path: str | None, required: bool) -> str | None:
    from ..runtime.loader import DEFAULT_MODEL_NAME, default_model_path

    if path:
        if not Path(path).is_file():
            raise UserError(f"checkpoint {path} does not exist")
        return str(Path(path).resolve())
    found = default_model_path()
    if found is None and required:
        raise UserError(f"no --checkpoint given and the default model {DEFAULT_MODEL_NAME} is "
                        f"not installed")
    return str(found) if found else None


# -- commands ----------------------------------------------------------------------------------

def run_make(args: argparse.Namespace) -> int:
    from ..data import build_dataset
    from ..eval.bagio import parse_battery, write_dataset_bag

    if args.rate <= 0:
        raise UserError(f"--rate must be > 0 frames per second, got {args.rate}")
    if args.start < 0 or args.limit < 0:
        raise UserError("--start and --limit must be >= 0")
    battery = parse_battery(args.battery) if args.battery else None
    options = {"classes": args.classes} if args.classes else {}
    dataset = build_dataset(args.dataset, args.data_root, args.split, **options)
    stop = len(dataset) if not args.limit else min(len(dataset), args.start + args.limit)
    indices = list(range(args.start, stop))
    if not indices:
        raise UserError(f"--start {args.start} is past the {len(dataset)} frames of the split")
    info = write_dataset_bag(
        dataset, args.out, indices=indices, progress=True, rate_hz=args.rate,
        storage=args.storage, battery=battery, camera_info=not args.no_camera_info,
        compressed=args.compressed, frame_id=args.frame_id, distro=args.distro,
        overwrite=args.overwrite)
    print(f"wrote {info.path} ({info.storage}, {len(indices)} frames, "
          f"{info.duration_ns / 1e9:.2f} s at {args.rate:g} Hz)")
    for name, (typ, n) in sorted(info.topics.items()):
        print(f"  {name}  {typ}  {n}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..eval.report import format_summary, write_report

    command = command_line()
    if args.mode == "offline":
        result = _offline(args)
    else:
        result = _replay(args)
    doc = result.doc
    print(format_summary(doc))
    if args.json_out:
        write_json(args.json_out, doc)
        print(f"wrote {args.json_out}")
    if args.report:
        paths = write_report(doc, result.scores, args.report,
                             title=f"Bag evaluation ({args.mode})", command=command)
        print(f"wrote the report: {', '.join(str(p) for p in paths)}")
    if doc.get("mode") == "replay" and not doc.get("frames_processed"):
        print("slimseg bag eval: error: the node answered no frame; see "
              f"{doc['node'].get('log')}", file=sys.stderr)
        return 1
    return 0


def _offline(args: argparse.Namespace) -> Any:
    from ..data.bagread import inspect_bag, resolve_topics
    from ..eval.offline import evaluate_bag_offline
    from ..runtime import load_engine

    # check the bag before spending seconds on the model
    topics = resolve_topics(inspect_bag(args.bag), args.image_topic, args.label_topic)
    if topics.labels is None:
        raise UserError(f"{args.bag} has no label topic to score against; name it with "
                        f"--label-topic")
    checkpoint = _checkpoint(args.checkpoint, required=True)
    engine = load_engine(checkpoint, backend=args.backend, device=args.device,
                         precision=args.precision, cache_dir=args.engine_cache_dir,
                         warmup_repeats=1, log=lambda m: print(m, file=sys.stderr))
    widths = parse_widths(args.widths, engine.widths)
    return evaluate_bag_offline(args.bag, engine, widths=widths, image_topic=args.image_topic,
                                label_topic=args.label_topic, model=checkpoint, progress=True)


def _replay(args: argparse.Namespace) -> Any:
    from ..eval.bagio import parse_battery
    from ..eval.replay_plan import ParamEvent, ReplayConfig
    from ..ros.client.replay import run_replay  # rclpy only for a replay

    checkpoint = _checkpoint(args.checkpoint, required=not args.running_node)
    events = tuple(ParamEvent(*parse_param_event(e)) for e in args.param_events)
    node_params = dict(_parse_node_param(p) for p in args.node_params)
    for key in ("backend", "device", "precision"):
        node_params.setdefault(key, getattr(args, key))
    if args.engine_cache_dir:
        node_params.setdefault("engine_cache_dir", args.engine_cache_dir)
    report_dir = Path(args.report) if args.report else None
    try:
        config = ReplayConfig(
            speed=args.speed, loops=args.loops, spawn_node=not args.running_node,
            node_name=args.node_name, labels_topic=args.labels_topic, model_path=checkpoint,
            adaptive=args.width is None, width=args.width, target_fps=args.target_fps,
            node_params=node_params if not args.running_node else {},
            battery=parse_battery(args.battery) if args.battery else None,
            param_events=events, settle_s=args.settle, startup_timeout_s=args.startup_timeout,
            domain_id=args.domain_id,
            node_log=report_dir / "node.log" if report_dir and not args.running_node else None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        return run_replay(args.bag, config, image_topic=args.image_topic,
                          label_topic=args.label_topic, battery_topic=args.battery_topic,
                          progress=True, log=lambda m: print(m, file=sys.stderr))
    except (TimeoutError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
