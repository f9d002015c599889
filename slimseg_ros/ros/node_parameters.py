"""The parameter table (:mod:`.params`) on an rclpy node: declared, read, and set by the node.

What ROS users expect and rclpy does not do by itself: ``30`` is taken for a double at start
(parameter files, ``-p``, ``parameter_overrides``) and on set (``ros2 param set``, ``ros2 param
load``); a name the node lacks is answered with the closest ones; and the node can mirror its own
state into parameters (``width``, ``adaptive``, the checkpoint's ``widths``) without its
on-set-parameters callback taking that for an operator's change.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any, Callable, Iterator

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from . import params as P

__all__ = ["NodeParameters"]

# Declared by rclpy itself; never reported as unknown.
_RCLPY_PARAMETERS = ("use_sim_time", "start_type_description_service")


class NodeParameters:
    """The table's parameters on ``node``.

    Args:
        managed: the lifecycle node's descriptors (start-up parameters not read-only).
    """

    def __init__(self, node: Node, managed: bool) -> None:
        self._node = node
        self._managed = managed
        self._internal = threading.local()

    def declare(self, on_set: Callable[[list[Parameter]], SetParametersResult]) -> None:
        """Declare :data:`~.params.NODE_PARAMETERS` and add the on-set callback; warn of
        start-up values for parameters the node does not have.

        Raises:
            ValueError: a start-up value the parameter cannot take (type or range); one line.
        """
        # rclpy keeps the values of parameter files, -p and parameter_overrides per node here;
        # fixing their types there is the only way to take 30 for a double at start.
        start_values = getattr(self._node, "_parameter_overrides", {})
        for s in P.NODE_PARAMETERS:
            given = start_values.get(s.name)
            if given is None:
                continue
            declared = Parameter.Type.from_parameter_value(s.default).value
            try:
                fixed = P.coerce(s.name, declared, given.type_.value, given.value)
            except ValueError as exc:
                raise ValueError(f"parameter {exc}") from None
            if fixed is not given.value:
                start_values[s.name] = Parameter(s.name, value=fixed)
        for s in P.NODE_PARAMETERS:
            try:
                self._node.declare_parameter(s.name, s.default, P.descriptor(s, self._managed))
            except Exception as exc:  # rclpy's ParameterException family: range, type
                raise ValueError(f"parameter {s.name}: {exc}") from None
        self._node.add_on_set_parameters_callback(on_set)
        for name in start_values:
            if name not in P.ALL_NAMES and name not in _RCLPY_PARAMETERS:
                self._node.get_logger().warning(
                    f"ignoring a start-up value: {P.unknown_parameter(name, P.ALL_NAMES)}")

    def coerce(self, parameter_list: list[Parameter]) -> list[Parameter] | str:
        """A set as the node takes it (integers for doubles), or why it is refused, in words
        (an unknown name, a value of another type)."""
        fixed = []
        for p in parameter_list:
            if not self._node.has_parameter(p.name):
                return P.unknown_parameter(p.name, P.ALL_NAMES)
            declared = self._node.describe_parameter(p.name)
            if p.type_ != Parameter.Type.NOT_SET and not declared.dynamic_typing:
                try:
                    value = P.coerce(p.name, declared.type, p.type_.value, p.value)
                except ValueError as exc:
                    return str(exc)
                p = Parameter(p.name, value=value)
            fixed.append(p)
        return fixed

    def value(self, name: str) -> Any:
        """The parameter's value as plain Python (lists, not arrays)."""
        value = self._node.get_parameter(name).value
        return value.tolist() if hasattr(value, "tolist") else value

    def values(self) -> dict[str, Any]:
        """Every table parameter's value."""
        return {s.name: self.value(s.name) for s in P.NODE_PARAMETERS}

    @property
    def setting_internally(self) -> bool:
        """Whether this thread is setting parameters as the node (see :meth:`as_node`)."""
        return getattr(self._internal, "active", False)

    @contextlib.contextmanager
    def as_node(self) -> Iterator[None]:
        """Parameter changes made meanwhile (in this thread) are the node's own: they mirror its
        state and pass its checks."""
        self._internal.active = True
        try:
            yield
        finally:
            self._internal.active = False

    def set_internal(self, values: dict[str, Any]) -> None:
        """Set parameters as the node itself (mirroring its state)."""
        with self.as_node():
            self._node.set_parameters([Parameter(k, value=v) for k, v in values.items()])

    def mirror(self, values: dict[str, Any]) -> None:
        """Set, as the node, those of ``values`` the parameters do not show yet (doubles
        compared with a tolerance: no update for a rounding)."""
        updates = {name: value for name, value in values.items()
                   if not _same(self.value(name), value)}
        if updates:
            self.set_internal(updates)

    def show(self, values: dict[str, Any]) -> None:
        """Declare or update :data:`~.params.CHECKPOINT_PARAMETERS` (``widths``,
        ``class_names``) to the model's ``values`` (start-up values for them are ignored)."""
        for name, value in values.items():
            if not self._node.has_parameter(name):
                with self.as_node():
                    self._node.declare_parameter(name, value,
                                                 P.descriptor(P.spec(name), self._managed),
                                                 ignore_override=True)
            elif self.value(name) != value:
                self.set_internal({name: value})


def _same(current: Any, value: Any) -> bool:
    if isinstance(value, float):
        return math.isclose(current, value)
    return bool(current == value)
