"""Entry points: ``run`` and ``new_event_loop`` (the policy is in ``policy.py``)."""

from __future__ import annotations

import asyncio
from asyncio import events
from collections.abc import Coroutine
from typing import Any, TypeVar

from aloop._core.clock import VirtualClock
from aloop.loop import Loop

__all__ = ["finish_loop", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop(
    *, virtual_time: bool | VirtualClock = False, backend: str | None = None
) -> Loop:
    """A new aloop event loop (pass it as ``loop_factory`` to asyncio).

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time.
    """
    return Loop(virtual_time=virtual_time, backend=backend)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: bool | None = None,
    virtual_time: bool | VirtualClock = False,
    trace: str | None = None,
    monitor: bool | None = None,
) -> _T:
    """Run ``main`` on a new aloop loop with ``asyncio.run``'s exact semantics.

    The loop is created, ``main`` runs as a task, leftover tasks are cancelled,
    async generators and the default executor are shut down, and the loop is
    closed. Ctrl-C cancels the main task, as under ``asyncio.run``.

    ``virtual_time=True`` (or a ``VirtualClock``) runs it on virtual time:
    sleeps and timeouts take no real time. ``trace="out.json"`` records task
    steps, callbacks and I/O waits to a Perfetto / Chrome trace file.
    ``monitor=True`` serves ``python -m aloop ps/pstree/top/cancel/trace/web
    PID`` (see ``aloop.Monitor``). Left as None, ``ALOOP_MONITOR=1`` and
    ``ALOOP_TRACE=out.json`` in the environment turn them on, as for every
    aloop loop; an argument given wins over its variable.
    """
    if events._get_running_loop() is not None:
        # Same words as asyncio.run, so code that matches on them keeps working.
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    loop = new_event_loop(virtual_time=virtual_time)
    runner = asyncio.Runner(debug=debug, loop_factory=lambda: loop)
    try:
        if monitor is not None or trace is not None:
            # Given arguments win over ALOOP_MONITOR / ALOOP_TRACE; otherwise
            # the loop's first run applies the variables (aloop.tooling.auto).
            from aloop.tooling.auto import configure

            configure(loop, monitor=monitor, trace=trace)
        # asyncio.run makes its loop the current one for the run, and then
        # none; a Runner given a loop_factory does neither, so do it here.
        events.set_event_loop(runner.get_loop())
        return runner.run(main)
    finally:
        # Closing the loop stops its monitor and saves its trace.
        runner.close()
        events.set_event_loop(None)
        if not loop.is_closed():
            loop.close()


def finish_loop(loop: asyncio.AbstractEventLoop, where: str) -> None:
    """Close a loop that outlived its program as ``asyncio.run`` closes its own.

    Tasks still alive are cancelled and awaited (one that failed instead is
    reported, as "unhandled exception in a task at ``where``"), then async
    generators and the default executor are shut down and the loop closed. A
    Ctrl-C meanwhile skips the waiting, not the closing. For loops that stay
    open across statements or cells: the REPL and IPython's runner.
    """
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": f"unhandled exception in a task at {where}",
                        "exception": task.exception(),
                        "task": task,
                    }
                )
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: leave without waiting
    finally:
        loop.close()
