"""Callback handles: what ``call_soon`` and ``call_later`` return.

These mirror ``asyncio.Handle`` and ``asyncio.TimerHandle`` (same public
methods, same repr, same error reporting) but are compiled native classes,
so creating and running one costs far less than the stdlib versions.
"""

from __future__ import annotations

import _thread
import builtins
import contextvars
import inspect
import traceback
from asyncio import events, format_helpers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from aloop._core.scheduler import BaseLoop

_copy_context: Final = contextvars.copy_context
# The unbound method: calling it skips looking "run" up on every call.
_context_run: Final = contextvars.Context.run
# ``getattr(obj, name, default)`` compiled by mypyc raises and then clears an
# AttributeError when ``name`` is missing (an exception object and a
# traceback), paid for every plain-function callback a recorder or hook asks
# for its ``__self__``. The builtin, called as an object, looks the name up
# without raising.
lookup: Final[Callable[[object, str, object], Any]] = builtins.getattr
StackSummary = traceback.StackSummary

# The C lock itself: threading.RLock is a Python function in front of it.
_RLock: Final = _thread.RLock

# 3.14+: the class of the handles asyncio's call_soon_threadsafe returns.
STDLIB_THREADSAFE_HANDLE: Final[Any] = lookup(events, "_ThreadSafeHandle", None)

# 3.13 shows a callback's arguments in reprs only in debug mode.
_ARGS_ONLY_IN_DEBUG: Final = (
    "debug" in inspect.signature(format_helpers._format_callback_source).parameters
)


def owner_of(callback: object) -> Any:
    """The object a callback is bound to (a task, for a task's step), else None."""
    return lookup(callback, "__self__", None)


def describe_callback(callback: object, args: tuple[Any, ...] | None, debug: bool) -> str:
    """``func(args) at file:line``, as this Python's asyncio writes it."""
    if _ARGS_ONLY_IN_DEBUG:
        return format_helpers._format_callback_source(  # type: ignore[call-arg,unused-ignore]
            callback, args or (), debug=debug
        )
    return format_helpers._format_callback_source(callback, args or ())


@mypyc_attr(free_list_len=1)
class Handle:
    """A callback scheduled on the loop; ``cancel()`` stops it from running."""

    __slots__ = (
        "_args",
        "_callback",
        "_cancelled",
        "_context",
        "_described",
        "_loop",
        "_repr",
        "_source_traceback",
    )

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: BaseLoop,
        context: contextvars.Context | None,
    ) -> None:
        # A callback runs in a copy of the context current when it was
        # scheduled, exactly as asyncio does.
        self._context: contextvars.Context = context if context is not None else _copy_context()
        self._loop = loop
        self._callback: Callable[..., object] | None = callback
        self._args: tuple[Any, ...] | None = args
        self._cancelled = False
        self._repr: str | None = None
        self._source_traceback: StackSummary | None = None
        # Set by a trace the first time it records this handle as a plain
        # callback: an I/O handle runs many times and is described once.
        self._described: str | None = None

    def _repr_info(self) -> list[str]:
        info = [type(self).__name__]
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(describe_callback(self._callback, self._args, self._loop._debug))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    def __repr__(self) -> str:
        if self._repr is not None:
            return self._repr
        return "<{}>".format(" ".join(self._repr_info()))

    def get_context(self) -> contextvars.Context:
        return self._context

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            if self._loop._debug:
                # Keep the callback's description for "Executing ... took" logs.
                self._repr = repr(self)
            self._callback = None
            self._args = None

    def cancelled(self) -> bool:
        return self._cancelled

    def _run(self) -> None:
        run_handle(self)

    def _report(self, exc: BaseException) -> None:
        source = describe_callback(self._callback, self._args, self._loop._debug)
        context: dict[str, Any] = {
            "message": f"Exception in callback {source}",
            "exception": exc,
            "handle": self,
        }
        if self._source_traceback:
            context["source_traceback"] = self._source_traceback
        self._loop.call_exception_handler(context)


def run_handle(handle: Handle | None) -> None:
    """Run one handle's callback; report what it raises to the loop.

    A function, not a method, so that it can let go of the handle: when this
    runs interpreted, a task's coroutine frame that ends in a traceback keeps
    this frame (its caller) alive, and a reference to the handle here would
    keep the finished task alive in a cycle until the next GC. asyncio does
    ``self = None`` in ``Handle._run`` for the same reason. (Not ``del``:
    mypyc miscounts references on a ``del`` of a local after its last use.)
    """
    assert handle is not None
    if isinstance(handle, ThreadSafeHandle):  # one type-pointer compare when compiled
        run_locked(handle)
        handle = None
        return
    callback = handle._callback
    args = handle._args
    context = handle._context
    try:
        # Spelled out by arity: a star-call would build a new tuple each time.
        if not args:
            _context_run(context, callback)  # type: ignore[arg-type]
        elif len(args) == 1:
            _context_run(context, callback, args[0])  # type: ignore[arg-type]
        else:
            _context_run(context, callback, *args)  # type: ignore[arg-type]
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        handle._report(exc)
    callback = None
    args = None
    handle = None


@mypyc_attr(free_list_len=1)
class ThreadSafeHandle(Handle):
    """What ``call_soon_threadsafe`` returns on 3.14+ (asyncio's ``_ThreadSafeHandle``).

    Another thread may cancel it: ``cancel()`` and ``cancelled()`` wait while
    the callback runs, and a handle cancelled after the loop took it from the
    queue but before it started does not run. The callback itself may cancel
    its own handle (the lock is reentrant); it then runs to its end.
    """

    __slots__ = ("_lock",)

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: BaseLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(callback, args, loop, context)
        self._lock = _RLock()

    @property  # type: ignore[misc]
    def __class__(self) -> Any:
        """asyncio's ``_ThreadSafeHandle``: ``isinstance`` checks against it hold."""
        if STDLIB_THREADSAFE_HANDLE is None:
            return ThreadSafeHandle
        return STDLIB_THREADSAFE_HANDLE

    def _repr_info(self) -> list[str]:
        info = super()._repr_info()
        info[0] = "_ThreadSafeHandle"  # asyncio's name for it
        return info

    # acquire()/release() rather than ``with``: compiled, ``with`` looks up
    # and calls __enter__ and __exit__ generically.

    def cancel(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            super().cancel()
        finally:
            lock.release()

    def cancelled(self) -> bool:
        lock = self._lock
        lock.acquire()
        try:
            return self._cancelled
        finally:
            lock.release()


def run_locked(handle: ThreadSafeHandle | None) -> None:
    """Run a thread-safe handle's callback holding its lock, unless cancelled meanwhile.

    Lets go of the handle at the end, for the reason given in ``run_handle``.
    """
    assert handle is not None
    lock = handle._lock
    lock.acquire()
    try:
        if not handle._cancelled:
            callback = handle._callback
            args = handle._args
            context = handle._context
            try:
                # run_handle's call again, by arity, rather than a helper both call:
                # that would add a native call to every plain callback, the hot path.
                if not args:
                    _context_run(context, callback)  # type: ignore[arg-type]
                elif len(args) == 1:
                    _context_run(context, callback, args[0])  # type: ignore[arg-type]
                else:
                    _context_run(context, callback, *args)  # type: ignore[arg-type]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                handle._report(exc)
            callback = None
            args = None
    finally:
        lock.release()
    handle = None


@mypyc_attr(free_list_len=1)
class TimerHandle(Handle):
    """A callback scheduled for a point in loop time."""

    __slots__ = ("_scheduled", "_seq", "_when")

    def __init__(
        self,
        when: float,
        seq: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: BaseLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(callback, args, loop, context)
        self._when = when
        # Timers due at the same instant run in the order they were scheduled.
        self._seq = seq
        self._scheduled = False

    def _repr_info(self) -> list[str]:
        info = super()._repr_info()
        info.insert(2 if self._cancelled else 1, f"when={self._when}")
        return info

    def __hash__(self) -> int:
        return hash(self._when)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            if self._when == other._when:
                return self._seq < other._seq
            return self._when < other._when
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when < other._when or self.__eq__(other)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            if self._when == other._when:
                return self._seq > other._seq
            return self._when > other._when
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when > other._when or self.__eq__(other)
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return (
                self._when == other._when
                and self._callback == other._callback
                and self._args == other._args
                and self._cancelled == other._cancelled
            )
        return NotImplemented

    def cancel(self) -> None:
        if not self._cancelled and self._scheduled:
            self._loop._timers.cancelled_one()
        super().cancel()

    def when(self) -> float:
        """The loop time at which the callback is due."""
        return self._when
