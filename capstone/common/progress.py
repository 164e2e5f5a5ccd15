"""A minimal terminal progress bar (stderr), quiet when output is not a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``start`` a task of n steps, ``update`` it, ``finish`` with a summary line.

    On a terminal the bar redraws in place at most 10 times a second; elsewhere (CI, logs, a
    notebook's captured stderr) only the summary lines are written, so logs stay readable.
    """

    def __init__(self, enabled: bool = True, stream=None, width: int = 30):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self._label, self._total, self._t0, self._last = "", 1, 0.0, 0.0

    def start(self, label: str, total: int) -> None:
        self._label, self._total = label, max(total, 1)
        self._t0 = self._last = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and done < self._total:
            return
        self._last = now
        filled = self.width * done // self._total
        rate = done / max(now - self._t0, 1e-9)
        eta = (self._total - done) / max(rate, 1e-9)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self._label} [{bar}] {done}/{self._total}  {rate:,.0f}/s  eta {eta:.0f} s"
        )
        self.stream.flush()

    def finish(self, summary: str) -> None:
        if not self.enabled:
            return
        clear = "\r\033[K" if self.live else ""
        self.stream.write(f"{clear}{summary}\n")
        self.stream.flush()
