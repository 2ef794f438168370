"""Virtual time: a loop clock that jumps to the next timer instead of sleeping.

With a ``VirtualClock`` attached, ``loop.time()`` starts at ``start`` and
moves only when the loop would otherwise sleep: nothing is ready, a
zero-timeout poll found no I/O, and no outside work holds time. Then it jumps
straight to the earliest timer (with ``autojump``, the default), so
``await asyncio.sleep(3600)`` returns at once and events keep their
real-time order.

Outside work holds time: executor jobs in flight (``run_in_executor``,
``asyncio.to_thread``), ``shutdown_default_executor``, and anything wrapped
in ``clock.hold()`` (for instance a thread the loop did not start that will
call ``call_soon_threadsafe``). While time is held the loop waits in real
time for that work to wake it.
"""

from __future__ import annotations

import asyncio
import math
import numbers
from types import TracebackType
from typing import Any

__all__ = ["TimeHold", "VirtualClock"]


class VirtualClock:
    """The time source of a virtual-time loop."""

    def __init__(self, start: object = 0.0, *, autojump: object = True) -> None:
        self.now = _seconds("start", start)
        self.autojump = bool(autojump)
        # Outside work that will wake the loop (executor jobs, holds).
        self.holds = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.jumps = 0

    def __repr__(self) -> str:
        mode = "autojump" if self.autojump else "manual"
        return f"<VirtualClock now={self.now!r} {mode} holds={self.holds}>"

    def time(self) -> float:
        """The virtual time now (``now``), as ``loop.time()`` reads it."""
        return self.now

    def advance(self, seconds: object) -> None:
        """Move time forward by ``seconds``; timers now due run on the next iteration."""
        step = _seconds("seconds", seconds)
        if step < 0:
            raise ValueError(f"cannot advance time backwards (by {seconds!r} seconds)")
        self.now += step

    def jump_to(self, when: float) -> None:
        """Move time to ``when`` if that is later; time never goes back."""
        if when > self.now:
            self.now = when
            self.jumps += 1

    def hold(self) -> TimeHold:
        """A context manager that keeps time still while outside work is pending."""
        return TimeHold(self)

    def wait_idle(self) -> asyncio.Future[None]:
        """A future that completes the next time the loop has nothing left to run.

        That is: every other task is blocked, no callback is ready and no I/O
        is ready, at the current virtual time; the clock has not moved yet.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(future)
        return future

    def has_idle_waiters(self) -> bool:
        return bool(self._idle_waiters)

    def wake_idle_waiters(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


def _seconds(name: str, value: object) -> float:
    """``value`` as a finite float; else an error naming ``name`` (not mypyc's)."""
    if not isinstance(value, (int, float, numbers.Real)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__!r}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return seconds


class TimeHold:
    """Returned by ``VirtualClock.hold()``; counts as pending outside work."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._held = False

    def __enter__(self) -> TimeHold:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Start counting as pending outside work (see ``VirtualClock.hold``)."""
        if not self._held:
            self._held = True
            self._clock.holds += 1

    def release(self, *args: Any) -> None:
        """Let time move again (extra args: usable as a done-callback)."""
        if self._held:
            self._held = False
            self._clock.holds -= 1
