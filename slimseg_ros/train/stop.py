"""Stopping a training run between steps on SIGINT or SIGTERM, with its state saved.

A run on a 2-core machine takes hours; killing it mid-step loses everything since the last
resumable state (up to ``checkpoint_every`` steps). Under :class:`StopSignals` the first signal
only asks the loop to stop after the step in progress; the loop then writes its state, so the
same command resumes exactly there. A second signal stops at once (``KeyboardInterrupt``).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["StopSignals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager: SIGINT/SIGTERM set a flag instead of ending the process.

    Outside the main thread (where Python cannot install handlers) it does nothing and signals
    keep their usual effect.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # asked twice: stop now, without saving
        self.signum = signum
        # os.write, not print or logging: both take locks the interrupted code may hold
        os.write(2, f"\n{self.name}: stopping after this step and saving the state (run the "
                 "same command again to resume); send it again to stop at once\n".encode())

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def requested(self, world: int = 1, device: torch.device | None = None) -> bool:
        """Whether any process of the run was asked to stop (all ranks then stop together)."""
        if world <= 1:
            return self.signum is not None
        flag = torch.tensor([1.0 if self.signum is not None else 0.0], device=device)
        dist.all_reduce(flag)  # ranks must leave the loop at the same step or all-reduce hangs
        if flag.item() > 0 and self.signum is None:
            self.signum = signal.SIGTERM
        return flag.item() > 0
