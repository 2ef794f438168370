"""Loop statistics: callbacks run, polls, I/O events, busy vs idle time, longest callback."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopStats", "StatsSnapshot"]


@dataclass(frozen=True)
class StatsSnapshot:
    callbacks: int
    polls: int
    io_events: int
    busy: float
    idle: float
    longest_callback: float
    tasks_alive: int

    @property
    def utilisation(self) -> float:
        """Share of measured time spent running callbacks rather than waiting for I/O."""
        total = self.busy + self.idle
        return self.busy / total if total else 0.0


class LoopStats:
    """Instrument counting what the loop does (attach with ``LoopStats.attach(loop)``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.callbacks = 0
        self.polls = 0
        self.io_events = 0
        self.busy = 0.0
        self.idle = 0.0
        self.longest_callback = 0.0
        self._started = 0.0

    @classmethod
    def attach(cls, loop: Any) -> LoopStats:
        stats = cls(loop)
        loop.add_instrument(stats)
        return stats

    def before_callback(self, handle: Any) -> None:
        self._started = time.perf_counter()

    def after_callback(self, handle: Any) -> None:
        spent = time.perf_counter() - self._started
        self.callbacks += 1
        self.busy += spent
        if spent > self.longest_callback:
            self.longest_callback = spent

    def before_io_wait(self, timeout: float) -> None:
        self._started = time.perf_counter()

    def after_io_wait(self, events: int) -> None:
        self.idle += time.perf_counter() - self._started
        self.polls += 1
        self.io_events += events

    def snapshot(self) -> StatsSnapshot:
        return StatsSnapshot(
            callbacks=self.callbacks,
            polls=self.polls,
            io_events=self.io_events,
            busy=self.busy,
            idle=self.idle,
            longest_callback=self.longest_callback,
            tasks_alive=len(asyncio.all_tasks(self._loop)),
        )
