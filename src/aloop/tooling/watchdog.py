"""Blocked-loop detection: a thread that notices a long callback while it runs.

The watchdog is an instrument and a thread. The instrument stamps the start
of every callback (task steps included); the thread wakes every
``threshold / 4`` seconds and, when one callback has run longer than
``threshold``, logs a warning naming the task or callback, how long it has
been running and the loop thread's current stack. It reports once per
blocking callback, while the block is still going on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = ["BlockReport", "Watchdog"]

logger = logging.getLogger("aloop.watchdog")


@dataclass(frozen=True)
class BlockReport:
    """One blocked-loop report."""

    what: str
    blocked_for: float
    stack: str


def _describe(handle: Any) -> str:
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return f"task {owner.get_name()!r} ({owner.get_coro()!r})"
    return f"callback {handle!r}"


class Watchdog:
    """Reports callbacks that block the loop for longer than ``threshold`` seconds."""

    def __init__(self, loop: Any, threshold: float = 0.1) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        self._loop = loop
        self.threshold = threshold
        self.reports: list[BlockReport] = []
        self._handle: Any = None
        self._started = 0.0
        self._reported = True
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        self._loop.add_instrument(self)
        self._thread = threading.Thread(target=self._watch, name="aloop-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._loop.is_closed():
            self._loop.remove_instrument(self)

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks (loop thread) ---------------------------------------------------

    def before_callback(self, handle: Any) -> None:
        self._loop_thread = threading.get_ident()
        self._handle = handle
        self._reported = False
        self._started = time.monotonic()

    def after_callback(self, handle: Any) -> None:
        self._started = 0.0
        self._handle = None

    # -- watcher thread ------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.threshold / 4):
            started, handle = self._started, self._handle
            if not started or self._reported or handle is None:
                continue
            blocked = time.monotonic() - started
            if blocked >= self.threshold:
                self._reported = True
                self._report(handle, blocked)

    def _report(self, handle: Any, blocked: float) -> None:
        frame = sys._current_frames().get(self._loop_thread or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        report = BlockReport(_describe(handle), blocked, stack)
        self.reports.append(report)
        logger.warning(
            "event loop blocked for %.3f s (and counting) by %s; loop thread stack:\n%s",
            blocked,
            report.what,
            stack,
        )
