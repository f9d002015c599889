"""Where the node executables start: signals handled from the first instruction.

``slimseg_node`` and ``slimseg_lifecycle_node`` (console scripts, the launchers in
``lib/slimseg_ros``, ``python -m slimseg_ros.ros.entry <executable> --ros-args ...``) start here.
This module imports nothing heavy, so while the interpreter then imports torch, rclpy and the
rest (seconds), SIGINT or SIGTERM ends the process at once with status 0 and no traceback
(nothing has been started that needs stopping). From ``rclpy.init`` on,
:func:`slimseg_ros.ros.process.run_node` handles them.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable

__all__ = ["EXECUTABLES", "main", "slimseg_lifecycle_node", "slimseg_node"]


def _exit_now(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    os._exit(0)


def _handle_early_signals() -> None:
    """Until the node exists a signal ends the process quietly with status 0."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_now)


def slimseg_node(args: list[str] | None = None) -> int:
    """Console script ``slimseg_node``: the plain node."""
    _handle_early_signals()
    from .node import run

    return run(args, exit_process=True)


def slimseg_lifecycle_node(args: list[str] | None = None) -> int:
    """Console script ``slimseg_lifecycle_node``: the managed node (starts unconfigured)."""
    _handle_early_signals()
    from .lifecycle_node import run

    return run(args, exit_process=True)


EXECUTABLES: dict[str, Callable[[list[str] | None], int]] = {
    "slimseg_node": slimseg_node,
    "slimseg_lifecycle_node": slimseg_lifecycle_node,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m slimseg_ros.ros.entry <executable> [--ros-args ...]``."""
    _handle_early_signals()
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in EXECUTABLES:
        print(f"usage: python -m slimseg_ros.ros.entry {{{','.join(EXECUTABLES)}}} "
              "[--ros-args ...]", file=sys.stderr)
        return 2
    return EXECUTABLES[argv[1]]([argv[0], *argv[2:]])


if __name__ == "__main__":
    sys.exit(main())
