"""The point controller at one input size, behind the width controller's interface.

``test_control_controller.py`` runs every one of its traces against this adapter too: with one
size, the operating-point controller must decide exactly what the width controller decides.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from slimseg_ros.control.points import PointController, width_points

SIZE = (360, 480)


class OneSizePointController:
    """``WidthController(widths, latency_profile, config)`` made of a :class:`PointController`."""

    def __init__(self, widths: Iterable[float], latency_profile: Mapping[Any, float],
                 config: Any = None) -> None:
        widths = tuple(sorted(set(float(w) for w in widths)))
        if not widths:
            raise ValueError("widths must be positive numbers, got ()")
        profile = {(float(k), SIZE): v for k, v in latency_profile.items()}
        self.inner = PointController(width_points(widths, SIZE), profile, config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def status(self, now: float) -> Any:
        s = self.inner.status(now)
        return dataclasses.replace(s, predicted_s={k[0]: v for k, v in s.predicted_s.items()})
