"""The managed ``slimseg`` node (executable ``slimseg_lifecycle_node``): the same node as a ROS 2
lifecycle node, for integrators who bring nodes up with a lifecycle manager (Nav2's
lifecycle_manager, launch_ros ``LifecycleNode``, ``ros2 lifecycle set``).

Same default name, parameters and topics as ``slimseg_node``; every code path is the plain
node's (:class:`~slimseg_ros.ros.segmentation.SlimSegCore`), called at these transitions:

- ``configure``: check the parameters, read the checkpoint, load and warm every width's engine
  (the transition returns when they are ready). Failure: back to ``unconfigured`` with one
  ``ERROR`` line saying why.
- ``activate``: subscribe to the camera and battery, start the worker; the outputs (lifecycle
  publishers) publish, ``~/width`` says the width in use.
- ``deactivate``: unsubscribe and stop the worker; engines stay loaded and warm.
- ``cleanup``: drop the engines (and the GPU memory they hold). While ``unconfigured`` the
  start-up parameters (``model_path``, ``backend``, ``device``, ``precision``, ``input_size``,
  ``engine_cache_dir``) may be set: the next ``configure`` loads another model without a
  restart, and ``widths``/``class_names`` follow it.
- ``shutdown`` (from any state): everything stops; the process then exits with status 0.

Transitions run in their own callback group of a two-thread executor, so parameter calls are
answered while ``configure`` builds engines.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node

from .process import run_node
from .segmentation import FrameTiming, SlimSegCore, StartupError, _Cancelled

__all__ = ["SlimSegLifecycleNode", "main", "run"]

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
ERROR = TransitionCallbackReturn.ERROR


def _transition(method: Callable[..., Any]) -> Callable[..., Any]:
    """rclpy turns an exception in a transition into ERROR without a word: say it first."""
    @functools.wraps(method)
    def wrapper(self: SlimSegLifecycleNode, state: LifecycleState) -> Any:
        try:
            return method(self, state)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"{method.__name__} failed: {type(exc).__name__}: {exc}")
            return ERROR
    return wrapper


class SlimSegLifecycleNode(SlimSegCore, LifecycleNodeMixin, Node):
    """Semantic segmentation with a run-time width, as a lifecycle node (module docstring).

    Args:
        node_name: defaults to ``slimseg``.
        **kwargs: passed to ``rclpy.node.Node``.
    """

    managed = True

    def __init__(self, node_name: str = "slimseg", **kwargs: Any) -> None:
        Node.__init__(self, node_name, **kwargs)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True,
                                    callback_group=MutuallyExclusiveCallbackGroup())
        self._init_core()
        self._phase = "unconfigured"
        self._finalized = False
        try:
            self._declare()
        except BaseException:
            Node.destroy_node(self)
            raise

    # -- for the spin loop -----------------------------------------------------------------

    def make_executor(self) -> Any:
        return MultiThreadedExecutor(num_threads=2)

    def keep_running(self) -> bool:
        return not self._finalized

    def _make_publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def _drop_publisher(self, publisher: Any) -> None:
        self.destroy_lifecycle_publisher(publisher)

    # -- transitions -----------------------------------------------------------------------

    @_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._phase = "configuring"
        try:
            settings = self._read_settings()
            self._phase = (f"configuring: loading the model and building the "
                           f"{settings.backend} engines")
            with self._uninterruptible():
                engine = self._build_engine(settings)
                try:
                    self._adopt_engine(engine)
                except (StartupError, _Cancelled):
                    engine.close()
                    raise
        except (StartupError, _Cancelled) as exc:
            self._phase = "unconfigured"
            if isinstance(exc, StartupError):
                self.get_logger().error(f"configure failed: {exc}")
            return FAILURE
        self._open_outputs()
        self._phase = "inactive"
        return SUCCESS

    @_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._open_inputs()
        self._start_worker()
        self._phase = "active"
        return result

    @_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._close_inputs()
        self._phase = "inactive"
        return super().on_deactivate(state)

    @_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_cleanup(state)
        self._close_outputs()
        self._release_engine()
        self._phase = "unconfigured"
        self.get_logger().info("cleaned up: engines released; start-up parameters may change")
        return result

    @_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._wind_down()
        self._finalized = True
        return SUCCESS

    @_transition
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._wind_down()
        self._phase = "unconfigured"
        return SUCCESS

    def _wind_down(self) -> None:
        self._stop_worker()
        self._close_inputs()
        self._close_outputs()
        self._release_engine()
        self._phase = "finalized"


def run(args: list[str] | None = None,
        frame_observer: Callable[[FrameTiming], None] | None = None,
        exit_process: bool = False) -> int:
    """Run the managed node (it starts unconfigured) until SIGINT/SIGTERM or ``shutdown``."""
    return run_node(SlimSegLifecycleNode, args, frame_observer, exit_process)


def main(args: list[str] | None = None) -> int:
    """``python -m slimseg_ros.ros.lifecycle_node``."""
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
