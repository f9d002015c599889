"""Waiting with a deadline: poll until something has happened, never sleep blindly."""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["wait_until"]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes
    (returns the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
