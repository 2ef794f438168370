"""IPython's ``%autoawait`` on aloop: one aloop loop that lives across cells.

    In [1]: %load_ext aloop.ipython
    In [2]: task = asyncio.create_task(worker()); await asyncio.sleep(0)
    In [3]: await asyncio.sleep(1); task.done()

``load_ipython_extension`` sets the shell's ``loop_runner`` to an ``AloopRunner``:
each cell with top-level ``await`` runs to completion on the runner's loop,
which stays open between cells, so tasks a cell creates are still there (and
run on) in the next ``await`` cell. The loop is also IPython's asyncio loop
(``IPython.core.async_helpers.get_asyncio_loop``), and in the terminal the
extension turns on ``%gui asyncio`` (unless another GUI event loop is on): the
prompt then waits for input on the loop, so tasks keep running between cells.
``%unload_ext aloop.ipython`` (or IPython's exit) cancels what is left and
closes the loop. In a Jupyter kernel use the aloop kernel instead
(``python -m aloop kernel install``): there the kernel's own loop runs cells.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Coroutine
from typing import Any

__all__ = ["AloopRunner", "load_ipython_extension", "unload_ipython_extension"]


class AloopRunner:
    """An IPython ``loop_runner``: runs each async cell on one long-lived aloop loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The shell's runner and IPython's loop before this one (restored on unload).
        self.previous: tuple[Any, asyncio.AbstractEventLoop | None] = (None, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, created on first use (again after ``close``)."""
        if self._loop is None or self._loop.is_closed():
            import aloop

            self._loop = aloop.new_event_loop()
        return self._loop

    def __call__(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one cell's coroutine on the loop; the loop's other tasks run meanwhile."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Cancel the tasks still alive, let them finish, and close the loop (``finish_loop``)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        from aloop.runner import finish_loop

        finish_loop(loop, "IPython's exit or %unload_ext")

    def __str__(self) -> str:
        # What %autoawait prints as the current runner.
        return "aloop"


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext aloop.ipython``: run ``await`` cells on an aloop loop kept across cells."""
    if isinstance(ip.loop_runner, AloopRunner):
        return
    running = _running_loop()
    if running is not None:
        # A Jupyter kernel: cells already run on the kernel's loop, and a
        # second loop cannot run inside it.
        kind = f"{type(running).__module__}.{type(running).__qualname__}"
        print(
            f"aloop.ipython: this shell runs cells on its own event loop ({kind}); "
            "for Jupyter install the aloop kernel: python -m aloop kernel install --user"
        )
        return
    from IPython.core import async_helpers

    runner = AloopRunner()
    runner.previous = (ip.loop_runner, async_helpers._asyncio_event_loop)
    ip.loop_runner = runner
    ip.autoawait = True
    # IPython keeps its own loop in this module global (made when None); with
    # ours there, %gui asyncio runs the terminal prompt on the aloop loop.
    async_helpers._asyncio_event_loop = runner.loop
    atexit.register(runner.close)
    if _is_terminal(ip) and ip.active_eventloop is None:
        # The terminal: %gui asyncio, so the prompt waits for input on the loop
        # and tasks run between cells (unless another GUI loop is in use).
        ip.enable_gui("asyncio")


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext aloop.ipython``: close the aloop loop, restore the previous runner."""
    runner = ip.loop_runner
    if not isinstance(runner, AloopRunner):
        return
    from IPython.core import async_helpers

    atexit.unregister(runner.close)
    runner.close()
    previous_runner, previous_loop = runner.previous
    async_helpers._asyncio_event_loop = previous_loop
    ip.loop_runner = previous_runner


def _is_terminal(ip: Any) -> bool:
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    return isinstance(ip, TerminalInteractiveShell)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
