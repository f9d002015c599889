"""The launch file and the installed layout it relies on.

launch/launch_ros are not on PyPI, so the launch file's own logic runs here against stand-ins of
launch/launch_ros (every action it returns, for the plain and the managed node); with the wheels
of ../shared/ros2cli installed, the real description is built too, and test_ros_cli.py runs
``ros2 launch`` itself. Also: setup.py installs the executables and the config, and every
parameter of config/slimseg.yaml is one the node declares and takes.
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


def test_setup_installs_the_executables_launch_file_and_config(monkeypatch) -> None:
    kw = _setup_kwargs(monkeypatch)
    scripts = kw["entry_points"]["console_scripts"]
    assert "slimseg_node = slimseg_ros.ros.entry:slimseg_node" in scripts
    assert "slimseg_lifecycle_node = slimseg_ros.ros.entry:slimseg_lifecycle_node" in scripts
    files = {dest: list(srcs) for dest, srcs in kw["data_files"]}
    assert {"resource/slimseg_node", "resource/slimseg_lifecycle_node"} <= set(
        files["lib/slimseg_ros"])
    assert "launch/seg.launch.py" in files["share/slimseg_ros/launch"]
    assert {"config/slimseg.yaml", "config/fastdds_large_data.xml"} <= set(
        files["share/slimseg_ros/config"])
    assert "resource/slimseg_ros" in files["share/ament_index/resource_index/packages"]
    assert os.access(ROOT / "resource" / "slimseg_node", os.X_OK)
    assert os.access(ROOT / "resource" / "slimseg_lifecycle_node", os.X_OK)
    from slimseg_ros.ros import entry

    assert set(entry.EXECUTABLES) == {"slimseg_node", "slimseg_lifecycle_node"}


def test_setup_lists_the_data_folders_as_packages(monkeypatch) -> None:
    """setuptools warned that assets/ and data/classes/ were missing from `packages`."""
    packages = set(_setup_kwargs(monkeypatch)["packages"])
    assert {"slimseg_ros.assets.camvid_sample", "slimseg_ros.assets.camvid_sample.val",
            "slimseg_ros.data.classes", "slimseg_ros.ros"} <= packages
    assert not any("__pycache__" in name for name in packages)


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


class _StubModule(types.ModuleType):
    """A module whose every name is a recording class (``_Recorded`` subclass of that name)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_Recorded,), {})
        setattr(self, name, cls)
        return cls


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict) -> str:
        return context[self.name]


class FindPackageShare:  # the source tree has the share layout (launch/, config/)
    def __init__(self, package: str) -> None:
        assert package == "slimseg_ros"

    def perform(self, context: dict) -> str:
        return str(ROOT)


def _load_launch_file(monkeypatch, arguments: dict[str, str]):
    """Run seg.launch.py's OpaqueFunction with ``arguments``: (declared argument names, the
    actions it returns, the launch file's namespace)."""
    names = ("launch", "launch.actions", "launch.event_handlers", "launch.events",
             "launch.launch_description_sources", "launch.substitutions", "launch_ros",
             "launch_ros.actions",
             "launch_ros.event_handlers", "launch_ros.events", "launch_ros.events.lifecycle",
             "launch_ros.substitutions")
    modules = {name: _StubModule(name) for name in names}
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.substitutions"].FindPackageShare = FindPackageShare
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = runpy.run_path(str(LAUNCH))
    description = namespace["generate_launch_description"]()
    declared = {a.args[0] for a in description.args[0] if a.args}  # DeclareLaunchArgument
    opaque = description.args[0][-1]
    context = {name: default for name, default, _ in namespace["ARGUMENTS"]}
    context.update(arguments)
    return declared, opaque.kwargs["function"](context), namespace


def _node(actions) -> _Recorded:
    node = actions[0]
    assert type(node).__name__ in ("Node", "LifecycleNode")
    return node


def test_launch_file_passes_the_config_and_arguments(monkeypatch) -> None:
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    declared, actions, _ = _load_launch_file(monkeypatch, {})
    assert {"image", "model_path", "backend", "device", "width", "adaptive",
            "namespace", "managed", "autostart", "fastdds_profile"} <= declared
    node = _node(actions).kwargs
    assert type(actions[0]).__name__ == "Node"
    assert node["executable"] == "slimseg_node" and node["package"] == "slimseg_ros"
    assert node["name"] == "slimseg"
    assert not node.get("emulate_tty")  # log files without colour escapes
    parameters, = node["parameters"]
    assert parameters == yaml.safe_load(CONFIG.read_text())["slimseg"]["ros__parameters"]
    assert ("image", "/camera/image_raw") in node["remappings"]
    profile = Path(node["additional_env"]["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_data.xml" and profile.is_file()


def test_launch_width_argument_pins_and_user_profile_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_profile.xml")
    _, actions, _ = _load_launch_file(monkeypatch, {
        "width": "0.5", "image": "/front/image", "namespace": "front", "model_path": "/m.st"})
    node = _node(actions).kwargs
    parameters, = node["parameters"]
    assert parameters["width"] == 0.5 and parameters["adaptive"] is False
    assert parameters["model_path"] == "/m.st"
    assert node["namespace"] == "front" and ("image", "/front/image") in node["remappings"]
    assert node["additional_env"] == {}  # the user's own profile is left alone
    _, actions, _ = _load_launch_file(monkeypatch, {"width": "0.5", "adaptive": "true"})
    assert _node(actions).kwargs["parameters"][0]["adaptive"] is True


def test_camera_launch_is_included_with_the_nodes_profile_and_arguments(
        monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    camera = tmp_path / "camera.launch.py"
    camera.write_text("")
    _, actions, _ = _load_launch_file(monkeypatch, {
        "camera_launch": str(camera), "camera_args": "video_device:=/dev/video0 'name:=a b'"})
    group, = [a for a in actions if type(a).__name__ == "GroupAction"]
    assert group.kwargs["scoped"] is True  # the setting ends with the group
    *settings, include = group.kwargs["actions"]
    profile = _node(actions).kwargs["additional_env"]["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert [s.args for s in settings] == [("FASTDDS_DEFAULT_PROFILES_FILE", profile)]
    assert include.args[0].args == (str(camera),)
    assert include.kwargs["launch_arguments"] == [("video_device", "/dev/video0"),
                                                  ("name", "a b")]
    # PACKAGE:FILE is the package's share/launch (the stand-in share is the source tree)
    _, actions, _ = _load_launch_file(monkeypatch, {"camera_launch": "slimseg_ros:seg.launch.py"})
    group, = [a for a in actions if type(a).__name__ == "GroupAction"]
    assert group.kwargs["actions"][-1].args[0].args == (str(LAUNCH),)
    # the node's profile off: the camera gets none either; without camera_launch, no group
    _, actions, _ = _load_launch_file(monkeypatch, {"camera_launch": str(camera),
                                                    "fastdds_profile": "none"})
    group, = [a for a in actions if type(a).__name__ == "GroupAction"]
    assert [type(a).__name__ for a in group.kwargs["actions"]] == ["IncludeLaunchDescription"]
    _, actions, _ = _load_launch_file(monkeypatch, {})
    assert "GroupAction" not in [type(a).__name__ for a in actions]
    with pytest.raises(ValueError, match="no launch file"):
        _load_launch_file(monkeypatch, {"camera_launch": str(tmp_path / "missing.py")})
    with pytest.raises(ValueError, match="name:=value"):
        _load_launch_file(monkeypatch, {"camera_launch": str(camera), "camera_args": "oops"})


def test_a_node_that_exits_with_an_error_fails_the_launch(monkeypatch) -> None:
    _, actions, namespace = _load_launch_file(monkeypatch, {})
    handler = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    on_exit, = [h for h in handler if type(h).__name__ == "OnProcessExit"]
    assert on_exit.kwargs["target_action"] is actions[0]
    fail = on_exit.kwargs["on_exit"]
    event = types.SimpleNamespace(returncode=1, action=types.SimpleNamespace(name="slimseg-1"))
    with pytest.raises(RuntimeError, match="exited with status 1"):
        fail(event, None)  # launch turns an exception into a non-zero exit status
    assert fail(types.SimpleNamespace(returncode=0, action=event.action), None) is None


def test_managed_launch_starts_the_lifecycle_node_and_autostarts_it(monkeypatch) -> None:
    from lifecycle_msgs.msg import Transition

    _, actions, _ = _load_launch_file(monkeypatch, {"managed": "true"})
    node = _node(actions)
    assert type(node).__name__ == "LifecycleNode"
    assert node.kwargs["executable"] == "slimseg_lifecycle_node"
    assert node.kwargs["name"] == "slimseg"
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["LifecycleNode", "RegisterEventHandler", "RegisterEventHandler",
                     "EmitEvent"]
    configure = actions[-1].kwargs["event"].kwargs
    assert configure["transition_id"] == Transition.TRANSITION_CONFIGURE
    then = actions[2].args[0]
    assert type(then).__name__ == "OnStateTransition"
    assert then.kwargs["start_state"] == "configuring" and then.kwargs["handle_once"]
    step = then.kwargs["entities"][0].kwargs["function"]
    context = types.SimpleNamespace(locals=types.SimpleNamespace(
        event=types.SimpleNamespace(goal_state="inactive")))
    activate, = step(context)
    assert activate.kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE
    context.locals.event.goal_state = "unconfigured"
    with pytest.raises(RuntimeError, match="could not be configured"):
        step(context)

    _, actions, _ = _load_launch_file(monkeypatch, {"managed": "true", "autostart": "false"})
    assert [type(a).__name__ for a in actions] == ["LifecycleNode", "RegisterEventHandler"]


def test_real_launch_description() -> None:
    pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI: install the wheels of "
                        "../shared/ros2cli (make venv does when that folder exists); the "
                        "stand-in tests above cover the launch file's logic")
    from launch import LaunchDescription

    namespace = runpy.run_path(str(LAUNCH))
    description = namespace["generate_launch_description"]()
    assert isinstance(description, LaunchDescription)
    names = {a.name for a in description.get_launch_arguments()}
    assert {"image", "model_path", "backend", "device", "width", "adaptive", "namespace",
            "managed", "autostart"} <= names
