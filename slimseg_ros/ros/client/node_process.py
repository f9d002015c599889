"""The node as a process: its command line, a parameter file, and the process itself.

:class:`NodeProcess` starts the node with parameters and remappings (:func:`node_command`), its
output in a log file, and stops it like ``ros2 launch`` stops it (SIGINT, then SIGTERM, then
SIGKILL), with its exit status. No rclpy here: what runs is another process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

__all__ = ["LIFECYCLE_NODE", "NODE", "NodeProcess", "node_command", "write_params_file"]

NODE = (sys.executable, "-m", "slimseg_ros.ros.entry", "slimseg_node")
"""The plain node's command (what the ``slimseg_node`` executable runs)."""
LIFECYCLE_NODE = (sys.executable, "-m", "slimseg_ros.ros.entry", "slimseg_lifecycle_node")
"""The managed node's command (``slimseg_lifecycle_node``)."""


def write_params_file(path: Path, params: Mapping[str, Any]) -> Path:
    """A ROS 2 parameter file giving ``params`` to every node (``/**``), as ``--params-file``
    reads it."""
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": dict(params)}}))
    return path


def node_command(*, params_file: Path | str | None = None, remaps: Sequence[str] = (),
                 params: Sequence[str] = (), executable: Sequence[str] | None = None
                 ) -> list[str]:
    """The node's command line: ``python -m slimseg_ros.ros.entry slimseg_node --ros-args ...``.

    Args:
        params_file: ``--params-file`` (YAML).
        remaps: ``-r`` arguments such as ``image:=/camera/image_raw`` or ``__node:=seg``.
        params: ``-p`` arguments such as ``backend:=torch``.
        executable: what to run instead of :data:`NODE` (:data:`LIFECYCLE_NODE`, an installed
            launcher, the benchmark's timing node).
    """
    cmd = list(executable or NODE) + ["--ros-args"]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    for remap in remaps:
        cmd += ["-r", remap]
    for param in params:
        cmd += ["-p", param]
    return cmd


class NodeProcess:
    """A node started as its own process; its output goes to ``log_path``.

    Stop it with :meth:`stop` (SIGINT, as ``ros2 launch`` sends on Ctrl-C, then SIGTERM, then
    SIGKILL); usable as a context manager that stops it.
    """

    def __init__(self, cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(env) if env is not None else None, cwd=cwd)

    @property
    def exit_code(self) -> int | None:
        """The exit status, None while it runs."""
        return self.proc.poll()

    def problem(self) -> str | None:
        """Why the node cannot become ready (it exited), None while it runs."""
        code = self.proc.poll()
        if code is None:
            return None
        return f"the node exited with status {code} before it was ready: {self.tail()}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 3) -> str:
        """The last lines of the node's output on one line."""
        text = self.log_text().strip().splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def resources(self) -> dict[str, float] | None:
        """The process's resident memory (MB), threads and open file descriptors (Linux
        ``/proc``); None once it has exited or where there is no ``/proc``."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
                "threads": int(fields["Threads"]), "fds": fds}

    def wait(self, timeout_s: float) -> int:
        """The exit status once it has exited (``subprocess.TimeoutExpired`` after
        ``timeout_s``)."""
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM after ``timeout_s``, then SIGKILL; the exit status."""
        try:
            for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0),
                                (signal.SIGKILL, None)):
                if self.proc.poll() is not None:
                    break
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait_s)
                except subprocess.TimeoutExpired:
                    continue
        finally:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
