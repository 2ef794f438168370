"""Loop statistics read from the scheduler's own counters (no hook per callback).

``LoopStats(loop)`` takes a baseline when made; ``snapshot()`` gives what
happened since: iterations, callbacks run, polls, I/O events, time idle in
polls versus busy, and tasks alive. Making one switches the loop to timing
its polls (two clock reads per poll) until every ``LoopStats`` of the loop
is closed.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aloop.loop import Loop

__all__ = ["LoopStats", "StatsSnapshot", "busy_fraction", "tasks_alive"]

# loop -> how many open LoopStats time its polls (the last one turns timing off).
_users: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class StatsSnapshot:
    """A loop's counters since its ``LoopStats`` was made (times in seconds)."""

    iterations: int
    """Loop iterations run."""
    callbacks: int
    """Callbacks run (task steps included)."""
    polls: int
    """Polls for I/O (``epoll_wait``/``poll`` calls)."""
    io_events: int
    """Readiness events the polls returned."""
    busy: float
    """Time spent running callbacks and loop work."""
    idle: float
    """Time spent waiting in polls for I/O or the next timer."""
    tasks_alive: int
    """Tasks of the loop not done now."""

    @property
    def utilisation(self) -> float:
        """Share of the time spent running rather than waiting for I/O or timers."""
        return busy_fraction(self.busy, self.idle)


def busy_fraction(busy: float, idle: float) -> float:
    """``busy / (busy + idle)`` within 0..1 (0 when no time passed)."""
    total = busy + idle
    return min(max(busy / total, 0.0), 1.0) if total > 0 else 0.0


def tasks_alive(loop: Any) -> int:
    """``len(asyncio.all_tasks(loop))``, read from any thread."""
    for _ in range(10):
        try:
            return len(asyncio.all_tasks(loop))
        except RuntimeError:  # the loop thread changed the task set under us
            continue
    return 0


class LoopStats:
    """Counts of what one aloop loop did since this object was made."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._closed = False
        _users[loop] = _users.get(loop, 0) + 1
        self._measured_before = loop._measure_idle
        loop._measure_idle = True
        self._wall = time.perf_counter()
        self._base = self._counters(self._wall)

    def close(self) -> None:
        """Stop timing polls if no other ``LoopStats`` of the loop needs it."""
        if self._closed:
            return
        self._closed = True
        left = _users.get(self._loop, 1) - 1
        if left > 0:
            _users[self._loop] = left
            return
        _users.pop(self._loop, None)
        self._loop._measure_idle = self._measured_before

    def _counters(self, now: float) -> tuple[int, int, int, int, float]:
        loop = self._loop
        idle = loop._idle_time
        started = loop._poll_started
        if started and loop._polling:
            # A wait in progress is idle time already, though not yet added
            # (a program whose tasks all sleep sits in one long poll).
            idle += max(now - max(started, self._wall), 0.0)
        return (loop._iterations, loop._handles_run, loop._polls, loop._io_events, idle)

    def snapshot(self) -> StatsSnapshot:
        """The counters now (cheap: reads the loop's native counters, no locking)."""
        now = time.perf_counter()
        counters = self._counters(now)
        iterations, callbacks, polls, events, idle = (
            a - b for a, b in zip(counters, self._base, strict=True)
        )
        wall = now - self._wall
        idle = min(max(float(idle), 0.0), wall)
        return StatsSnapshot(
            iterations=int(iterations),
            callbacks=int(callbacks),
            polls=int(polls),
            io_events=int(events),
            busy=max(wall - idle, 0.0),
            idle=idle,
            tasks_alive=tasks_alive(self._loop),
        )
