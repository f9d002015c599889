"""Progress bars that stay readable in log files.

On a terminal tqdm redraws one line in place; written to a file or a CI log, every redraw is
kept, and a long replay became one enormous line. Off a terminal the bar is redrawn at most every
``LOG_INTERVAL_S`` seconds, each redraw on its own line.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]

LOG_INTERVAL_S = 15.0


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """``tqdm(*args, **kwargs)`` on stderr, throttled and line by line when it is not a TTY."""
    from tqdm import tqdm

    stream = kwargs.setdefault("file", sys.stderr)
    if not _is_tty(stream):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S)
        kwargs.setdefault("ncols", 100)
        kwargs["file"] = _LineWriter(stream)
    return tqdm(*args, **kwargs)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class _LineWriter:
    """Turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self._stream.write(text + "\n")

    def flush(self) -> None:
        self._stream.flush()
