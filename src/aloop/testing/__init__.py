"""Testing helpers: aloop loops for pytest-asyncio and anyio, on real or virtual time.

The pytest plugin (the top-level module ``aloop_pytest``, registered through
the ``pytest11`` entry point) adds the ``aloop`` marker, the ``aloop_clock``
fixture and ``--aloop`` (ini ``aloop = true``), which plugs these factories
into pytest-asyncio and anyio for the whole session. By hand, for
pytest-asyncio (1.4+) and anyio, ``loop_factories`` and ``loop_factory`` give
factories to plug into their own hooks: real time unless ``virtual_time=True``
is asked for.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from aloop._core.clock import VirtualClock
from aloop.runner import new_event_loop

__all__ = ["loop_factories", "loop_factory"]


def loop_factory(
    *, virtual_time: bool = False, start: float = 0.0, autojump: bool = True
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of aloop loops; with ``virtual_time=True`` each gets a fresh virtual clock."""
    if not virtual_time:
        return new_event_loop

    def make() -> asyncio.AbstractEventLoop:
        return new_event_loop(virtual_time=VirtualClock(start, autojump=autojump))

    return functools.update_wrapper(make, new_event_loop)


def loop_factories(
    *, virtual_time: bool = False, name: str = "aloop"
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """For pytest-asyncio's ``pytest_asyncio_loop_factories`` hook."""
    return {name: loop_factory(virtual_time=virtual_time)}
