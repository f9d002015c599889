"""Driving the node from outside: what replay, the benchmarks and the DDS tests share.

- :mod:`.node_process`: the node started as its own process (:class:`NodeProcess`,
  :func:`node_command`, :func:`write_params_file`).
- :mod:`.probe`: this process's side over DDS (:class:`Probe`, :class:`Collector`).
- :mod:`.wait`: :func:`wait_until`, the one way to wait with a deadline.
- :mod:`.replay` and :mod:`.replay_client`: a bag replayed through the node and its answers
  recorded (``slimseg bag eval --mode replay``).

The node itself (the rest of ``slimseg_ros.ros``) never imports this package.
"""

from .node_process import LIFECYCLE_NODE, NODE, NodeProcess, node_command, write_params_file
from .probe import Collector, Probe
from .wait import wait_until

__all__ = [
    "LIFECYCLE_NODE", "NODE", "Collector", "NodeProcess", "Probe", "node_command", "wait_until",
    "write_params_file",
]
