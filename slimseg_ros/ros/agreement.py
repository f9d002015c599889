"""The node's label-free accuracy signal: agreement with its most accurate operating point.

Now and then, in idle time only, the worker also runs the most accurate point on the frame it
just answered; :class:`~slimseg_ros.control.agreement.AgreementMonitor` decides when (no frame
may wait for it) and notices sustained drops. This module holds what the node keeps of it: the
reference point, the last value, and their ``/diagnostics`` text. rclpy-free.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..control import PointController
from ..control.agreement import AgreementMonitor
from ..eval.metrics import label_agreement
from ..runtime import PointEngine
from ..sizes import format_size

__all__ = ["AgreementCheck"]

Point = tuple[float, tuple[int, int]]
"""(width, network input size (H, W))."""


class AgreementCheck:
    """When to measure agreement, against what, and the last value (see the module docstring)."""

    def __init__(self) -> None:
        self.monitor = AgreementMonitor(period_s=0.0)  # off until engines are adopted
        self.reference: Point | None = None
        """The most accurate operating point: what agreement is measured against."""
        self.value: float | None = None

    def reset(self, controller: PointController, period_s: float) -> None:
        """New engines: measure against their most accurate point, from no history."""
        best = max(controller.points, key=lambda p: (p.accuracy, -p.cost))
        self.reference = best.key
        self.monitor = AgreementMonitor(period_s=period_s)
        self.value = None

    def set_period(self, period_s: float) -> None:
        self.monitor.period_s = period_s

    def measure(self, engine: PointEngine, ctrl: PointController, rgb: Any, labels: Any,
                point: Point, received: float, frame_waiting: Callable[[], bool]
                ) -> tuple[float, str | None] | None:
        """Run the reference point on ``rgb`` if due and there is time; (agreement of
        ``labels`` with it, a warning the first time a sustained drop shows), or None.

        The run must fit before the next frame is due (``received`` plus the budget), and no
        frame may be waiting.
        """
        ref = self.reference
        now = time.monotonic()
        # cheap tests first: this runs after every frame, a check every agreement_period_s
        if ref is None or point == ref or not self.monitor.period_passed(now):
            return None
        budget_s, reference_s = ctrl.forecast(ref, now)
        if not self.monitor.due(now, received + budget_s - now, reference_s) or frame_waiting():
            return None
        reference = engine.infer(rgb, ref[0], ref[1])
        value = label_agreement(labels, reference, len(engine.meta.class_names))
        self.value = value
        return value, self.monitor.record(time.monotonic(), point, value)

    def diagnostic_values(self) -> dict[str, str]:
        """``agreement`` and ``agreement_reference`` for ``/diagnostics``."""
        ref = self.reference
        return {"agreement": "nan" if self.value is None else f"{self.value:.3f}",
                "agreement_reference": ("" if ref is None
                                        else f"{ref[0]:g}@{format_size(ref[1])}")}
