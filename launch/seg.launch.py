"""Launch the slimseg node with config/slimseg.yaml (ROS 2 Humble, Jazzy, Kilted).

    ros2 launch slimseg_ros seg.launch.py image:=/camera/image_raw
    ros2 launch slimseg_ros seg.launch.py image:=/camera/image_raw width:=0.5   # pinned
    ros2 launch slimseg_ros seg.launch.py namespace:=front model_path:=/models/mine.safetensors
    ros2 launch slimseg_ros seg.launch.py managed:=true                         # lifecycle node
    ros2 launch slimseg_ros seg.launch.py managed:=true autostart:=false        # for a manager
    ros2 launch slimseg_ros seg.launch.py camera_launch:=usb_cam:camera.launch.py \
        camera_args:="video_device:=/dev/video0" image:=/image_raw   # the camera driver too

Launch arguments left empty keep the value of the parameters file. Giving ``width`` pins that
width (``adaptive`` false) unless ``adaptive`` is given too. The parameters file is read here and
handed to the node as values, so its ``slimseg:`` section applies under any namespace.

``managed:=true`` starts ``slimseg_lifecycle_node`` (same name, parameters and topics) and, with
``autostart`` (default true, like Nav2's bringup), configures and activates it; with
``autostart:=false`` it waits unconfigured for a lifecycle manager or ``ros2 lifecycle set``.

The Fast DDS large-data profile (config/fastdds_large_data.xml) is applied to the node unless
``FASTDDS_DEFAULT_PROFILES_FILE`` is already set or another RMW is in use
(``fastdds_profile:=none`` turns it off, a path chooses another).

``camera_launch`` includes the camera driver's own launch file (a path, or ``PACKAGE:FILE`` for
``share/PACKAGE/launch/FILE``) with ``camera_args`` as its arguments, in a group whose
processes get the same profile as the node. It is the profile on the *publishing* side that
carries large best-effort frames; a camera started on Fast DDS defaults loses most of them in
transport (the node then warns on /diagnostics; docs/transport.md).

A node that exits with a non-zero status (it could not start: an unusable model, a width the
model lacks...) or that autostart cannot configure ends the launch with a non-zero status, so a
supervisor (systemd, a fleet manager) sees the failure.
"""

import os
import shlex

import yaml
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument, EmitEvent, GroupAction, IncludeLaunchDescription, OpaqueFunction,
    RegisterEventHandler, SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit
from launch.events import matches_action
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

PACKAGE = "slimseg_ros"
NODE_NAME = "slimseg"

ARGUMENTS = (
    ("image", "/camera/image_raw", "camera topic (sensor_msgs/Image; <image>/compressed when "
     "input_transport is compressed)"),
    ("battery_topic", "/battery_state", "sensor_msgs/BatteryState topic"),
    ("namespace", "", "namespace of the node and its relative topics"),
    ("params_file", "", "parameters file; empty = share/slimseg_ros/config/slimseg.yaml"),
    ("model_path", "", "checkpoint (.safetensors); empty = the parameters file's value"),
    ("backend", "", "auto | torch | onnxruntime | tensorrt; empty = the parameters file's"),
    ("device", "", "auto | cpu | cuda | cuda:N; empty = the parameters file's"),
    ("precision", "", "fp32 | fp16; empty = the parameters file's"),
    ("width", "", "pin this width (e.g. 0.5); empty = the parameters file's"),
    ("adaptive", "", "true | false; empty = the parameters file's (false if width is given)"),
    ("input_transport", "", "raw | compressed; empty = the parameters file's"),
    ("managed", "false", "true = the lifecycle node slimseg_lifecycle_node instead of "
     "slimseg_node"),
    ("autostart", "true", "with managed:=true: configure and activate it at once (false: it "
     "waits unconfigured for a lifecycle manager)"),
    ("fastdds_profile", "auto", "auto = config/fastdds_large_data.xml unless "
     "FASTDDS_DEFAULT_PROFILES_FILE is set; a path; or 'none'"),
    ("log_level", "info", "debug | info | warn | error"),
    ("camera_launch", "", "the camera driver's launch file, started with the node under the same "
     "Fast DDS profile: a path, or PACKAGE:FILE (share/PACKAGE/launch/FILE); empty = none"),
    ("camera_args", "", "camera_launch's arguments: 'name:=value name:=value'"),
)


def _file_parameters(path, node_name):
    """The ``ros__parameters`` of every section of ``path`` that applies to the node."""
    with open(path, encoding="utf-8") as stream:
        document = yaml.safe_load(stream) or {}
    values = {}
    for key, section in document.items():
        last = str(key).rstrip("/").split("/")[-1]
        if last in ("**", "*", node_name) and isinstance(section, dict):
            values.update(section.get("ros__parameters") or {})
    return values


def _as_bool(text, name):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"launch argument {name} must be true or false, got {text!r}")


def _fail_on_error(event, context):
    """A node that exits non-zero fails the whole launch (its ERROR line says why)."""
    if event.returncode != 0:
        raise RuntimeError(f"{event.action.name} exited with status {event.returncode}; "
                           "its ERROR line above says why")


def _camera_launch_file(spec, context):
    """The file ``camera_launch`` names: PACKAGE:FILE in that package's share/launch, or a path."""
    package, sep, name = spec.partition(":")
    if sep and package and "/" not in package:
        path = os.path.join(FindPackageShare(package).perform(context), "launch", name)
    else:
        path = os.path.abspath(os.path.expanduser(spec))
    if not os.path.isfile(path):
        raise ValueError(f"camera_launch {spec!r}: no launch file {path}")
    return path


def _camera_arguments(text):
    """'a:=1 b:=two' -> [("a", "1"), ("b", "two")] (shell quoting allowed)."""
    pairs = []
    for item in shlex.split(text):
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"camera_args must be 'name:=value ...', got {item!r}")
        pairs.append((name, value))
    return pairs


def _camera(spec, args_text, env, context):
    """The camera driver's launch file, in a group whose processes get ``env`` (the node's
    transport profile) and nothing else of it: the setting ends with the group."""
    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(_camera_launch_file(spec, context)),
        launch_arguments=_camera_arguments(args_text))
    return GroupAction(actions=[*(SetEnvironmentVariable(k, v) for k, v in env.items()),
                                include], scoped=True)


def _transition(node, transition_id):
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def _after_first_configure(node):
    """autostart's second step: activate once configured; a failed configure fails the launch.
    Only for the first configure: later ones are a lifecycle manager's or an operator's."""
    def step(context):
        if context.locals.event.goal_state == "inactive":
            return [_transition(node, Transition.TRANSITION_ACTIVATE)]
        raise RuntimeError(f"{NODE_NAME} could not be configured (autostart); its ERROR line "
                           "says why")
    return OpaqueFunction(function=step)


def _launch_node(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = FindPackageShare(PACKAGE).perform(context)
    params_file = arg["params_file"] or os.path.join(share, "config", "slimseg.yaml")
    parameters = _file_parameters(params_file, NODE_NAME)
    for name in ("model_path", "backend", "device", "precision", "input_transport"):
        if arg[name]:
            parameters[name] = arg[name]
    if arg["width"]:
        parameters["width"] = float(arg["width"])
        parameters["adaptive"] = False
    if arg["adaptive"]:
        parameters["adaptive"] = _as_bool(arg["adaptive"], "adaptive")

    env = {}
    profile = arg["fastdds_profile"]
    fastdds = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps")
    if profile == "auto":
        if fastdds and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = os.path.join(
                share, "config", "fastdds_large_data.xml")
    elif profile and profile != "none":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile

    managed = _as_bool(arg["managed"], "managed")
    node = (LifecycleNode if managed else Node)(
        package=PACKAGE, executable="slimseg_lifecycle_node" if managed else "slimseg_node",
        name=NODE_NAME, namespace=arg["namespace"], output="screen",
        parameters=[parameters],
        remappings=[("image", arg["image"]), ("battery_state", arg["battery_topic"])],
        additional_env=env,
        arguments=["--ros-args", "--log-level", arg["log_level"]],
    )
    actions = [node, RegisterEventHandler(OnProcessExit(target_action=node,
                                                        on_exit=_fail_on_error))]
    if arg["camera_launch"]:
        actions.append(_camera(arg["camera_launch"], arg["camera_args"], env, context))
    if managed and _as_bool(arg["autostart"], "autostart"):
        actions += [
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", handle_once=True,
                entities=[_after_first_configure(node)])),
            _transition(node, Transition.TRANSITION_CONFIGURE),
        ]
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_launch_node)]
    )
