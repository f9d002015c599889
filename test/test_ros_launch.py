"""The launch file and the installed layout it relies on.

launch/launch_ros are not installable here, so: the real launch description is checked only
where launch_ros exists (skipped otherwise); what can be checked here is checked here (setup.py
installs the executable and the config, every parameter of config/slimseg.yaml is one the node
declares and takes, and the launch file's own logic run against stand-ins of launch/launch_ros).
"""

from __future__ import annotations

import os
import runpy
import sys
import types
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from slimseg_ros.ros import params as P  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "slimseg.yaml"
LAUNCH = ROOT / "launch" / "seg.launch.py"


def _setup_kwargs(monkeypatch) -> dict:
    """What setup.py passes to setuptools.setup (run for real, with setup() captured)."""
    import setuptools

    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    return captured


def test_setup_installs_the_executable_launch_file_and_config(monkeypatch) -> None:
    kw = _setup_kwargs(monkeypatch)
    assert "slimseg_node = slimseg_ros.ros.node:main" in kw["entry_points"]["console_scripts"]
    files = {dest: list(srcs) for dest, srcs in kw["data_files"]}
    assert "resource/slimseg_node" in files["lib/slimseg_ros"]
    assert "launch/seg.launch.py" in files["share/slimseg_ros/launch"]
    assert {"config/slimseg.yaml", "config/fastdds_large_data.xml"} <= set(
        files["share/slimseg_ros/config"])
    assert "resource/slimseg_ros" in files["share/ament_index/resource_index/packages"]
    assert os.access(ROOT / "resource" / "slimseg_node", os.X_OK)
    from slimseg_ros.ros import node

    assert callable(node.main)


@pytest.mark.dds
def test_every_yaml_parameter_is_declared_and_taken_by_the_node(make_checkpoint) -> None:
    section = yaml.safe_load(CONFIG.read_text())["slimseg"]["ros__parameters"]
    declared_before_load = {s.name for s in P.NODE_PARAMETERS}
    assert set(section) == declared_before_load  # the shipped config is complete, no extras
    checkpoint = make_checkpoint(input_size=(64, 96))
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = SlimSegNode(context=context, cli_args=["--ros-args", "--params-file", str(CONFIG)],
                           parameter_overrides=[Parameter("model_path", value=str(checkpoint)),
                                                Parameter("backend", value="torch")])
        try:
            for name, value in section.items():
                assert node.has_parameter(name), name
                if name not in ("model_path", "backend"):
                    assert node.get_parameter(name).value == value, name
            assert list(node.get_parameter("widths").value) == [0.25, 0.5, 0.75, 1.0]
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# -- the launch file against stand-ins of launch / launch_ros ------------------------------------

class _Recorded:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


def _load_launch_file(monkeypatch, arguments: dict[str, str]):
    """Run seg.launch.py's OpaqueFunction with ``arguments``; the launch_ros Node kwargs."""
    launch = types.ModuleType("launch")
    launch.LaunchDescription = _Recorded
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = _Recorded
    actions.OpaqueFunction = _Recorded
    substitutions = types.ModuleType("launch.substitutions")

    class LaunchConfiguration:
        def __init__(self, name: str) -> None:
            self.name = name

        def perform(self, context: dict) -> str:
            return context[self.name]

    substitutions.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = _Recorded
    ros_subs = types.ModuleType("launch_ros.substitutions")

    class FindPackageShare:  # the source tree has the share layout (launch/, config/)
        def __init__(self, package: str) -> None:
            assert package == "slimseg_ros"

        def perform(self, context: dict) -> str:
            return str(ROOT)

    ros_subs.FindPackageShare = FindPackageShare
    for name, module in {"launch": launch, "launch.actions": actions,
                         "launch.substitutions": substitutions, "launch_ros": launch_ros,
                         "launch_ros.actions": ros_actions,
                         "launch_ros.substitutions": ros_subs}.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = runpy.run_path(str(LAUNCH))
    description = namespace["generate_launch_description"]()
    declared = {a.args[0] for a in description.args[0] if a.args}  # DeclareLaunchArgument
    opaque = description.args[0][-1]
    context = {name: default for name, default, _ in namespace["ARGUMENTS"]}
    context.update(arguments)
    node, = opaque.kwargs["function"](context)
    return declared, node.kwargs


def test_launch_file_passes_the_config_and_arguments(monkeypatch) -> None:
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    declared, node = _load_launch_file(monkeypatch, {})
    assert {"image", "model_path", "backend", "device", "width", "adaptive",
            "namespace"} <= declared
    assert node["executable"] == "slimseg_node" and node["package"] == "slimseg_ros"
    assert node["name"] == "slimseg"
    parameters, = node["parameters"]
    assert parameters == yaml.safe_load(CONFIG.read_text())["slimseg"]["ros__parameters"]
    assert ("image", "/camera/image_raw") in node["remappings"]
    profile = Path(node["additional_env"]["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_data.xml" and profile.is_file()


def test_launch_width_argument_pins_and_user_profile_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_profile.xml")
    _, node = _load_launch_file(monkeypatch, {
        "width": "0.5", "image": "/front/image", "namespace": "front", "model_path": "/m.st"})
    parameters, = node["parameters"]
    assert parameters["width"] == 0.5 and parameters["adaptive"] is False
    assert parameters["model_path"] == "/m.st"
    assert node["namespace"] == "front" and ("image", "/front/image") in node["remappings"]
    assert node["additional_env"] == {}  # the user's own profile is left alone
    _, node = _load_launch_file(monkeypatch, {"width": "0.5", "adaptive": "true"})
    assert node["parameters"][0]["adaptive"] is True


def test_real_launch_description() -> None:
    pytest.importorskip("launch_ros", reason="launch_ros is not installable here (ROS 2 install "
                        "only); the stand-in tests above cover the launch file's logic")
    from launch import LaunchDescription

    namespace = runpy.run_path(str(LAUNCH))
    description = namespace["generate_launch_description"]()
    assert isinstance(description, LaunchDescription)
    names = {a.name for a in description.get_launch_arguments()}
    assert {"image", "model_path", "backend", "device", "width", "adaptive", "namespace"} <= names
