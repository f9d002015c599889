"""The ``slimseg`` node (executable ``slimseg_node``): camera images in, label images out, width
chosen at run time.

docs/node.md is the contract. In short:

- ``image`` (``sensor_msgs/Image``) or ``image/compressed`` in; ``labels`` (mono8, the input's
  size and header), ``labels_color`` and ``overlay`` (rgb8, only while subscribed), ``~/width``
  (transient local) and ``/diagnostics`` out; ``battery_state`` feeds the width controller.
- It is in the graph and answers parameter calls from the moment it exists: it checks its
  parameters and reads the checkpoint's header (widths, class names) at once, then loads and
  warms the engines in a thread while the executor spins. Frames that arrive before the engines
  are ready are counted as dropped, not kept. ``~/width`` is first published once it is ready.
- A parameter value it cannot start with ends it with one ``ERROR`` line and exit status 1;
  SIGINT and SIGTERM stop it at any moment with status 0 (:mod:`slimseg_ros.ros.entry`).

Everything it does is shared with the managed variant (``slimseg_lifecycle_node``) through
:class:`~slimseg_ros.ros.segmentation.SlimSegCore`.

Run it as
``slimseg_node --ros-args --params-file config/slimseg.yaml -r image:=/camera/image_raw``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from rclpy.node import Node

from ..runtime import SegmentationEngine
from .process import run_node
from .segmentation import FrameTiming, SlimSegCore, StartupError, _Cancelled
from .settings import Settings

__all__ = ["SlimSegNode", "StartupError", "FrameTiming", "main", "run"]


class SlimSegNode(SlimSegCore, Node):
    """Semantic segmentation with a run-time width (see the module docstring).

    Args:
        node_name: defaults to ``slimseg``.
        engine: a ready engine to use instead of loading ``model_path`` (tests, benchmarks).
        **kwargs: passed to ``rclpy.node.Node`` (``context``, ``namespace``,
            ``parameter_overrides``, ``cli_args``...).

    Raises:
        StartupError: a parameter value is unusable, or the checkpoint cannot be read.
    """

    def __init__(self, node_name: str = "slimseg", *, engine: SegmentationEngine | None = None,
                 **kwargs: Any) -> None:
        Node.__init__(self, node_name, **kwargs)
        self._init_core()
        self._fatal: str | None = None
        self._loader: threading.Thread | None = None
        self._ready_guard = self.create_guard_condition(self._on_engine_ready)
        try:
            self._declare()
            self.engine = engine  # a given engine's metadata stands for the checkpoint's
            settings = self._read_settings()
            self._open_outputs()
            self._open_inputs()
            if engine is not None:
                self._adopt_engine(engine)
                self._start_worker()
            else:
                self._phase = (f"starting: loading the model and building the "
                               f"{settings.backend} engines")
                self._loader = threading.Thread(target=self._load, args=(settings,),
                                                name="slimseg-loader", daemon=True)
                self._loader.start()
        except BaseException:
            self.close()
            Node.destroy_node(self)
            raise

    def _load(self, settings: Settings) -> None:
        """The loader thread: build, adopt, then hand over to the executor."""
        try:
            with self._uninterruptible():
                self._adopt_engine(self._build_engine(settings))
        except _Cancelled:
            return
        except StartupError as exc:
            self._fatal = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a start-up failure, not a trace
            self._fatal = f"cannot load the model: {type(exc).__name__}: {exc}"
        if not self._closing:
            self._ready_guard.trigger()

    def _on_engine_ready(self) -> None:
        if self._closing or self._serving:
            return
        if self._fatal is not None:
            self.get_logger().error(self._fatal)
            return
        self._start_worker()

    def keep_running(self) -> bool:
        return self._fatal is None

    def exit_code(self) -> int:
        return 0 if self._fatal is None else 1

    def stop(self, timeout: float = 5.0) -> None:  # noqa: ARG002 - kept for callers
        """Stop the worker (after the frame in hand); call before ``destroy_node``."""
        self.close()


def run(args: list[str] | None = None,
        frame_observer: Callable[[FrameTiming], None] | None = None,
        exit_process: bool = False) -> int:
    """Run a node until SIGINT/SIGTERM; the exit status (0, or 1 if it could not start).

    Args:
        args: command line (``--ros-args ...``); None = ``sys.argv``.
        frame_observer: set as the node's ``frame_observer`` (benchmarks).
        exit_process: end the process once the node is down (the executables; see
            :func:`~slimseg_ros.ros.process.run_node`).
    """
    return run_node(SlimSegNode, args, frame_observer, exit_process)


def main(args: list[str] | None = None) -> int:
    """``python -m slimseg_ros.ros.node``: run the node until SIGINT/SIGTERM; exit status."""
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
