"""Launch the slimseg node with config/slimseg.yaml (ROS 2 Humble, Jazzy, Kilted).

    ros2 launch slimseg_ros seg.launch.py image:=/camera/image_raw
    ros2 launch slimseg_ros seg.launch.py image:=/camera/image_raw width:=0.5   # pinned
    ros2 launch slimseg_ros seg.launch.py namespace:=front model_path:=/models/mine.safetensors

Launch arguments left empty keep the value of the parameters file. Giving ``width`` pins that
width (``adaptive`` false) unless ``adaptive`` is given too. The parameters file is read here and
handed to the node as values, so its ``slimseg:`` section applies under any namespace.
The Fast DDS large-data profile (config/fastdds_large_data.xml) is applied to the node unless
``FASTDDS_DEFAULT_PROFILES_FILE`` is already set or another RMW is in use.
"""

import os

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

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
    ("fastdds_profile", "auto", "auto = config/fastdds_large_data.xml unless "
     "FASTDDS_DEFAULT_PROFILES_FILE is set; a path; or 'none'"),
    ("log_level", "info", "debug | info | warn | error"),
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

    return [Node(
        package=PACKAGE, executable="slimseg_node", name=NODE_NAME,
        namespace=arg["namespace"], output="screen", emulate_tty=True,
        parameters=[parameters],
        remappings=[("image", arg["image"]), ("battery_state", arg["battery_topic"])],
        additional_env=env,
        arguments=["--ros-args", "--log-level", arg["log_level"]],
    )]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_launch_node)]
    )
