"""After ``pip install`` into a prefix, ``<prefix>/lib/slimseg_ros/slimseg_node`` exists and starts
the node (that is where ``ros2 run`` and launch_ros look), and the share files are in place.

The install goes into a temporary prefix (``pip install --prefix --ignore-installed``, no
dependencies, no build isolation) from a copy of the sources, so neither the checkout nor this
environment's own install is touched; the dependencies come from this environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from slimseg_ros.ros.client import NodeProcess, Probe, node_command  # noqa: E402

pytestmark = [pytest.mark.dds, pytest.mark.slow]  # a pip install, then the node over DDS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("setup.py", "setup.cfg", "package.xml", "resource", "launch", "config", "slimseg_ros")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("install")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    target = work / "prefix"
    # --ignore-installed: without it pip uninstalls this environment's own (editable) slimseg_ros
    # before installing into the prefix.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--ignore-installed", "--quiet", "--prefix", str(target), str(src)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    still = subprocess.run([sys.executable, "-c", "import slimseg_ros"], cwd=work,
                           capture_output=True, text=True, timeout=120)
    assert still.returncode == 0, "the install into the prefix removed this environment's copy"
    return target


def _site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    assert found, f"no site-packages under {prefix}"
    return found[0]


def _env(prefix: Path) -> dict[str, str]:
    # The prefix has no python of its own: the launcher falls back to python3 on PATH (this
    # environment's), which finds the installed package first through PYTHONPATH.
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                PYTHONPATH=str(_site_packages(prefix)), OMP_NUM_THREADS="1")


def test_install_puts_the_ros_files_where_ros_looks(prefix: Path) -> None:
    for name in ("slimseg_node", "slimseg_lifecycle_node"):
        launcher = prefix / "lib" / "slimseg_ros" / name
        assert launcher.is_file() and os.access(launcher, os.X_OK), name
        assert (prefix / "bin" / name).is_file(), name
    share = prefix / "share" / "slimseg_ros"
    for relative in ("package.xml", "launch/seg.launch.py", "config/slimseg.yaml",
                     "config/fastdds_large_data.xml"):
        assert (share / relative).is_file(), relative
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "slimseg_ros"
            ).is_file()


def test_installed_launcher_starts_the_installed_node(prefix: Path, tmp_path: Path,
                                                     make_checkpoint) -> None:
    env = _env(prefix)
    where = subprocess.run([sys.executable, "-c", "import slimseg_ros.ros.node as m; "
                            "print(m.__file__)"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(prefix), where.stdout + where.stderr

    checkpoint = make_checkpoint(input_size=(64, 96))
    launcher = prefix / "lib" / "slimseg_ros" / "slimseg_node"
    cmd = node_command(executable=[str(launcher)], remaps=["__ns:=/installed"],
                       params=[f"model_path:={checkpoint}", "backend:=torch"])
    with Probe("/installed/slimseg", labels_topic=None) as probe:
        node = NodeProcess(cmd, tmp_path / "node.log", _env(prefix), cwd=tmp_path)
        try:
            started = probe.wait_started(90.0, node.problem)
            assert started in (0.25, 0.5, 0.75, 1.0)
            node.send(signal.SIGINT)  # what `ros2 launch` sends on Ctrl-C
            assert node.wait(60) == 0, node.log_text()[-2000:]
        finally:
            node.stop()


def test_installed_lifecycle_launcher_starts_the_managed_node(prefix: Path, tmp_path: Path,
                                                              make_checkpoint) -> None:
    launcher = prefix / "lib" / "slimseg_ros" / "slimseg_lifecycle_node"
    cmd = node_command(executable=[str(launcher)], remaps=["__ns:=/installed_managed"],
                       params=[f"model_path:={make_checkpoint(input_size=(64, 96))}"])
    with Probe("/installed_managed/slimseg", labels_topic=None) as probe:
        node = NodeProcess(cmd, tmp_path / "node.log", _env(prefix), cwd=tmp_path)
        try:
            assert probe.lifecycle_state(90.0) == "unconfigured"  # a lifecycle node, by name
            node.send(signal.SIGINT)
            assert node.wait(60) == 0, node.log_text()[-2000:]
        finally:
            node.stop()
