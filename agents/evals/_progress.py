"""A one-line progress bar on stderr: redrawn on a terminal, only its last line elsewhere
(a CI log gets one line per dataset, not hundreds)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 24


class Progress:
    """Counts finished case runs of ``total``; ``close()`` prints the final line."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._started = time.perf_counter()
        self._closed = False

    def advance(self, passed: bool) -> None:
        """One more case run finished."""
        self.done += 1
        self.failed += not passed
        if self._live:
            self._stream.write("\r" + self.line())
            self._stream.flush()

    def line(self) -> str:
        """``label [#####-----] 12/40, 1 failed, 8.2 s``."""
        filled = _WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        elapsed = time.perf_counter() - self._started
        return (
            f"{self.label} [{bar}] {self.done}/{self.total}, {self.failed} failed, {elapsed:.1f} s"
        )

    def close(self) -> None:
        """End the bar with its final line (once)."""
        if self._closed:
            return
        self._closed = True
        self._stream.write(("\r" if self._live else "") + self.line() + "\n")
        self._stream.flush()
