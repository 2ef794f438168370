"""Blocked-loop detection by sampling, so the loop pays nothing per callback.

A thread wakes every ``threshold / 4`` seconds and reads two things the
scheduler keeps anyway: how many callbacks it has finished and whether it is
waiting in poll. When the loop is running, not polling, and no callback has
finished for ``threshold`` seconds, one callback (or task step) is blocking
it: the watchdog logs a warning naming it, how long it has run so far and the
loop thread's current stack, once per blocking callback, while the block
still goes on (logger ``aloop.watchdog``: on stderr unless logging is
configured). With ``log=False`` it only keeps ``reports`` and ``longest``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aloop.loop import Loop

__all__ = ["BlockReport", "Watchdog"]

logger = logging.getLogger("aloop.watchdog")


@dataclass(frozen=True)
class BlockReport:
    """One blocked-loop report."""

    what: str
    blocked_for: float
    stack: str


def describe_running(loop: Any) -> str:
    """The task whose step runs now, else "a callback" (read from any thread)."""
    task = asyncio.current_task(loop)
    if task is not None:
        return f"task {task.get_name()!r} ({task.get_coro()!r})"
    return "a callback (not a task step)"


class Watchdog:
    """Reports callbacks that block an aloop loop for longer than ``threshold`` seconds."""

    def __init__(self, loop: Loop, threshold: float = 0.1, *, log: bool = True) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        self._loop = loop
        self.threshold = threshold
        #: Whether each report is also logged (``aloop.watchdog``, WARNING).
        self.log = log
        self.reports: list[BlockReport] = []
        #: Longest run of a single callback seen so far (to sampling precision).
        self.longest = 0.0
        #: When the callback running now started (sampled), or None.
        self.blocked_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        """Start watching from a daemon thread; returns the watchdog."""
        self._thread = threading.Thread(target=self._watch, name="aloop-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def current_block(self) -> tuple[float, str] | None:
        """(seconds so far, what) of the callback running now, if one is running."""
        since = self.blocked_since
        if since is None:
            return None
        return time.monotonic() - since, describe_running(self._loop)

    def _watch(self) -> None:
        loop = self._loop
        last = -1
        reported = False
        while not self._stop.wait(self.threshold / 4):
            count = loop._handles_run
            busy = loop._thread_id is not None and not loop._polling
            now = time.monotonic()
            if count != last or not busy:
                last = count
                self.blocked_since = now if busy else None
                reported = False
                continue
            since = self.blocked_since
            if since is None:
                # Busy since the last look (first callback after a poll).
                self.blocked_since = now
                continue
            blocked = now - since
            self.longest = max(self.longest, blocked)
            if blocked >= self.threshold and not reported:
                reported = True
                self._report(blocked)

    def _report(self, blocked: float) -> None:
        frame = sys._current_frames().get(self._loop._thread_id or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        report = BlockReport(describe_running(self._loop), blocked, stack)
        self.reports.append(report)
        if not self.log:
            return
        logger.warning(
            "event loop blocked for %.3f s (and counting) by %s; loop thread stack:\n%s",
            blocked,
            report.what,
            stack,
        )
