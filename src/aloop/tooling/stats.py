"""Loop statistics read from the scheduler's own counters (no hook per callback).

``LoopStats(loop)`` takes a baseline when made; ``snapshot()`` gives what
happened since: iterations, callbacks run, polls, I/O events, time idle in
polls versus busy, and tasks alive. Making one switches the loop to timing
its polls (two clock reads per poll).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopStats", "StatsSnapshot"]


@dataclass(frozen=True)
class StatsSnapshot:
    iterations: int
    callbacks: int
    polls: int
    io_events: int
    busy: float
    idle: float
    tasks_alive: int

    @property
    def utilisation(self) -> float:
        """Share of the time spent running rather than waiting for I/O or timers."""
        total = self.busy + self.idle
        return self.busy / total if total else 0.0


class LoopStats:
    """Counts of what one aloop loop did since this object was made."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        loop._measure_idle = True
        self._wall = time.perf_counter()
        self._base = self._counters()

    def _counters(self) -> tuple[int, int, int, int, float]:
        loop = self._loop
        return (
            loop._iterations,
            loop._handles_run,
            loop._polls,
            loop._io_events,
            loop._idle_time,
        )

    def snapshot(self) -> StatsSnapshot:
        now = self._counters()
        iterations, callbacks, polls, events, idle = (
            a - b for a, b in zip(now, self._base, strict=True)
        )
        wall = time.perf_counter() - self._wall
        return StatsSnapshot(
            iterations=int(iterations),
            callbacks=int(callbacks),
            polls=int(polls),
            io_events=int(events),
            busy=max(wall - idle, 0.0),
            idle=float(idle),
            tasks_alive=len(asyncio.all_tasks(self._loop)),
        )
