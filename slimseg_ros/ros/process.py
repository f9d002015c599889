"""The node executables' process: the spin loop, signals once the node exists, the exit status.

:func:`run_node` is what ``slimseg_node`` and ``slimseg_lifecycle_node`` run after
:mod:`slimseg_ros.ros.entry` has imported them:

- from ``rclpy.init`` on, SIGINT and SIGTERM ask the spin loop to stop: the worker finishes the
  frame in hand, the node leaves the graph, the context shuts down, status 0. The loop wakes
  every :data:`POLL_S` to look, so this takes well under 2 s. rclpy's own handlers are not
  installed: they would shut the context down under the worker's feet (a publish in flight then
  fails);
- work that cannot be interrupted (exporting or compiling an engine, minutes for TensorRT) is
  abandoned rather than waited for: once the node is down the process ends with ``os._exit``
  (caches are written atomically, so nothing half-built is ever used);
- a terminal's Ctrl-C reaches the node twice under ``ros2 launch`` (from the terminal and
  forwarded by launch): further signals change nothing, but a stop that has not finished
  :data:`FORCE_EXIT_S` after the first signal ends the process anyway (status 0).

The process also caps how far the C heap grows after huge frames (:func:`limit_heap_growth`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

__all__ = ["FORCE_EXIT_S", "POLL_S", "StopRequest", "limit_heap_growth", "run_node"]

POLL_S = 0.2
"""How often the spin loop looks for a stop request (a Python signal handler runs only when the
main thread is back in Python)."""
MMAP_THRESHOLD_BYTES = 4 << 20
FORCE_EXIT_S = 3.0
"""A stop still unfinished this long after the first signal ends the process at once."""


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the spin loop to stop (see the module docstring)."""

    def __init__(self, force_after_s: float = FORCE_EXIT_S) -> None:
        self._event = threading.Event()
        self.signal: int | None = None
        self._force_after_s = force_after_s

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self._event.is_set():
            return
        self.signal = signum
        self._event.set()
        watchdog = threading.Timer(self._force_after_s, os._exit, (0,))
        watchdog.daemon = True
        watchdog.start()

    def set(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


def limit_heap_growth(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of ``threshold`` bytes and more with their own mappings (glibc).

    glibc raises its mmap threshold after a large block is freed, so the next large blocks
    come from the heap and stay there: decoding a few 4K PNG frames left the node larger for
    good (docs/log/reliability.md, Fuzzed images). A fixed threshold returns such blocks to the
    system when they are freed. No-op (False) where glibc's ``mallopt`` is not available.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def run_node(make_node: Callable[[], Any], args: list[str] | None = None,
             frame_observer: Callable[[Any], None] | None = None,
             exit_process: bool = False) -> int:
    """Create a node with ``make_node()``, spin it until a signal (or until it is done), stop it
    cleanly; the exit status (0, or 1 when it could not start).

    With ``exit_process`` (the executables), the process ends right there once the node is down
    and the ``atexit`` functions have run: tearing down torch, ONNX Runtime and the rest module
    by module took most of the stop's time, for nothing (docs/log/reliability.md, Fixed because
    of these runs).
    A build still running in another thread (abandoned) always ends the process that way.

    The node (a :class:`~slimseg_ros.ros.segmentation.SlimSegCore`) says which executor it
    needs (``make_executor``), whether to keep spinning (``keep_running``), its exit status
    (``exit_code``), and whether work is still running that cannot be stopped (``close``).
    """
    import rclpy
    import rclpy.logging
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    from .segmentation import StartupError

    stop = StopRequest().install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    limit_heap_growth()
    logger = rclpy.logging.get_logger("slimseg")
    node = executor = None
    code = 0
    abandoned = False
    try:
        if stop.requested:
            return 0
        node = make_node()
        node.frame_observer = frame_observer
        executor = node.make_executor()
        executor.add_node(node)
        while not stop.requested and node.keep_running():
            executor.spin_once(timeout_sec=POLL_S)
        code = node.exit_code()
    except StartupError as exc:
        logger.error(str(exc))
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if stop.signal is not None:
                node.get_logger().info(f"stopping on {signal.Signals(stop.signal).name}")
            abandoned = node.close()
            if abandoned:
                node.get_logger().info("not waiting for the engine build in progress")
            if executor is not None and not abandoned:  # an abandoned build would be joined
                executor.shutdown(timeout_sec=2.0)
            node.destroy_node()
        rclpy.try_shutdown()
        if abandoned or exit_process:
            # A build in another thread cannot be interrupted; its caches are written
            # atomically, so leaving it is safe. Python would wait for it at exit.
            _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process: ``atexit`` functions and stream flushes, then no interpreter teardown."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
