"""Helpers for the tests that run real libraries on both loops (tests/test_lib_*.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import aloop

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def aloop_bug(reason: str) -> Callable[[F], F]:
    """Run on both loops, the aloop run expected to fail (strict) because of ``reason``.

    Like the ``loop_factory`` fixture, with the same ids; once aloop is fixed
    the aloop run passes, strict xfail turns that into a failure, and the mark
    comes off.
    """
    mark = pytest.mark.xfail(strict=True, reason=f"aloop bug: {reason}")
    return pytest.mark.parametrize(
        "loop_factory",
        [
            pytest.param(aloop.new_event_loop, id="aloop", marks=mark),
            pytest.param(asyncio.new_event_loop, id="asyncio"),
        ],
    )


def run_guarded(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    main: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, T]],
    timeout: float = 30.0,
) -> T:
    """Run ``main(loop)`` on a fresh loop; a hang fails the test instead of stalling it.

    A thread cancels the program after ``timeout`` seconds (a bound on a
    hang, not a timing check): a loop stuck in its poll is woken by
    ``call_soon_threadsafe`` as a user's would be.
    """
    loop = loop_factory()
    expired = threading.Event()
    try:
        task = loop.create_task(main(loop))

        def expire() -> None:
            expired.set()
            loop.call_soon_threadsafe(task.cancel)

        watchdog = threading.Timer(timeout, expire)
        watchdog.start()
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if expired.is_set():
                raise AssertionError(f"hung: not done after {timeout:.0f} s") from None
            raise
        finally:
            watchdog.cancel()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
