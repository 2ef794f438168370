"""``aloop.Loop``: the compiled scheduler plus asyncio's event-loop interface.

Everything per-callback lives in ``aloop._core.scheduler.BaseLoop``, the
compiled base; ``aloop.network.NetworkMixin`` and
``aloop.processes.ProcessMixin`` add the network and process methods (how
they fit: ``aloop._core.loopparts``), and this class what runs once per
program or per blocking call: running until a future completes, executors,
async generator shutdown and closing. All their state is declared in
``BaseLoop``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import warnings
from asyncio import base_events, futures, tasks
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, TypeVarTuple

from aloop._core.loopparts import LoopCore
from aloop._core.scheduler import BaseLoop
from aloop.network import NetworkMixin
from aloop.processes import ProcessMixin

__all__ = ["Loop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# os.environ's own dict (bytes keys on POSIX): one dict probe per lookup,
# where os.environ's Mapping methods encode the key and run Python code,
# too much for each run_forever.
_environ: Any = getattr(os.environ, "_data", None)
_ENV_KEYS: tuple[Any, ...] = (b"ALOOP_MONITOR", b"ALOOP_TRACE", b"ALOOP_OTEL")
if _environ is None:  # pragma: no cover - not CPython on POSIX
    _environ = os.environ
    _ENV_KEYS = ("ALOOP_MONITOR", "ALOOP_TRACE", "ALOOP_OTEL")
_MONITOR_KEY, _TRACE_KEY, _OTEL_KEY = _ENV_KEYS
_modules = sys.modules


def _run_until_complete_cb(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() is already unwinding with it; no need to stop.
            return
    futures._get_loop(fut).stop()  # type: ignore[attr-defined]


class Loop(LoopCore, NetworkMixin, ProcessMixin, asyncio.AbstractEventLoop):  # type: ignore[misc]
    """An asyncio event loop whose scheduler is aloop's."""

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        try:
            closed = self.is_closed()
        except AttributeError:
            # A subclass whose __init__ failed before BaseLoop's ran: nothing
            # was opened, and a second error would only hide the first.
            return
        if not closed:
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    def run_forever(self) -> None:
        """Run until ``stop()`` is called.

        ``ALOOP_MONITOR``/``ALOOP_TRACE``/``ALOOP_OTEL`` in the environment
        start their tooling for this loop (see ``aloop.tooling.auto``).
        """
        if _MONITOR_KEY in _environ or _TRACE_KEY in _environ or _OTEL_KEY in _environ:
            from aloop.tooling.auto import loop_starting

            loop_starting(self)
        BaseLoop.run_forever(self)

    def close(self) -> None:
        """Drop queued callbacks, stop the default executor (without waiting), release fds."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        auto = _modules.get("aloop.tooling.auto")
        if auto is not None:  # a monitor or trace to stop and save first
            auto.loop_closing(self)
        if self._debug:
            base_events.logger.debug("Close %r", self)  # type: ignore[attr-defined]
        self._close_processes()
        self._close_core()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def run_until_complete(self, future: Generator[Any, None, _T] | Awaitable[_T]) -> _T:
        """Run until ``future`` (a future, task or coroutine) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        fut = tasks.ensure_future(future, loop=self)  # type: ignore[arg-type]
        if new_task:
            # An exception here is the caller's to see, not a pending-task warning.
            fut._log_destroy_pending = False  # type: ignore[attr-defined]
        fut.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and fut.done() and not fut.cancelled():
                # The exception propagates; don't also log it as never retrieved.
                fut.exception()
            raise
        finally:
            fut.remove_done_callback(_run_until_complete_cb)
        if not fut.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return fut.result()

    # -- executors -------------------------------------------------------------

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[[*_Ts], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run ``func(*args)`` in ``executor`` (default: a thread pool)."""
        self._check_closed()
        if self._debug:
            from aloop._core.debug import check_callback

            check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        future = futures.wrap_future(executor.submit(func, *args), loop=self)
        if self._vclock is not None:
            # Virtual time must not jump while the job runs in real time.
            hold = self._vclock.hold()
            hold.acquire()
            future.add_done_callback(hold.release)
        return future

    def set_default_executor(self, executor: Any) -> None:
        """Use ``executor`` (a ``ThreadPoolExecutor``) for ``run_in_executor(None, ...)``."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Shut the default executor down and wait for its threads (up to ``timeout`` s)."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        if self._vclock is not None:
            hold = self._vclock.hold()
            hold.acquire()
            future.add_done_callback(hold.release)
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            warnings.warn(
                f"The executor did not finishing joining its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    def _do_shutdown(self, future: asyncio.Future[None]) -> None:
        try:
            assert self._default_executor is not None
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(
                    futures._set_result_unless_cancelled,  # type: ignore[attr-defined]
                    future,
                    None,
                )
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    # -- async generators --------------------------------------------------------

    async def shutdown_asyncgens(self) -> None:
        """Close every async generator still open on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[agen.aclose() for agen in closing], return_exceptions=True)
        for result, agen in zip(results, closing, strict=True):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": "an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )
