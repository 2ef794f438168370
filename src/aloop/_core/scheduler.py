"""The scheduler: ready queue, timers, I/O readiness and the run loop.

``BaseLoop`` is the compiled core of ``aloop.Loop``. It owns everything that
runs per callback or per iteration; ``aloop.loop.Loop`` adds the cold parts
(executors, async generator shutdown, repr) and the asyncio ABC.

This is the only place where callbacks are actually *called*: in
``_run_once``, which runs exactly the callbacks that were ready when the
iteration started, so a callback that reschedules itself cannot starve I/O
or timers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import signal
import sys
import threading
import time
import weakref
from asyncio import coroutines, events
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import mypyc_attr

from aloop._core import debug, errors
from aloop._core.clock import VirtualClock
from aloop._core.deadlock import VirtualTimeDeadlock, describe_deadlock
from aloop._core.fdtable import FdTable, fileobj_to_fd
from aloop._core.handles import (
    STDLIB_THREADSAFE_HANDLE,
    Handle,
    ThreadSafeHandle,
    TimerHandle,
    owner_of,
    run_handle,
)
from aloop._core.hooks import Instruments
from aloop._core.recorder import (
    Recorder,
    RecorderClient,
    attach,
    begin,
    detach,
    spawned,
    stopped,
    wait_begin,
    wait_end,
    woken,
)
from aloop._core.timers import TimerQueue
from aloop._io import heap
from aloop._io.poller import READ, Poller
from aloop._io.wakeup import Waker

if TYPE_CHECKING:
    import socket

    from aloop._core.children import ChildWatchers
    from aloop._core.signals import SignalHandlers

_monotonic: Final = time.monotonic
_perf_counter: Final = time.perf_counter
_get_ident: Final = threading.get_ident
# Run slots at the front of the ready list are deleted once this many have run.
_COMPACT_AFTER: Final = 64
# The Task and Future classes are looked up on every create_task and
# create_future, as asyncio's own loop does: a program or a test may make
# ``asyncio.tasks.Task`` the pure-Python Task (and ``asyncio.futures.Future``
# the pure-Python Future), and the loop must then build those. A lookup in the
# module's dict is the cheapest form of that (one dict probe).
_TASKS_NS: Final[dict[str, Any]] = asyncio.tasks.__dict__
_FUTURES_NS: Final[dict[str, Any]] = asyncio.futures.__dict__
# What a task's step callback may be bound to (hooks recognise task steps).
_TASK_TYPES: Final = (asyncio.Task, asyncio.tasks._PyTask)  # type: ignore[attr-defined]

# How often a virtual-time loop re-checks while outside work holds time (s).
HOLD_RECHECK: Final = 0.01

_HAS_EAGER_TASKS: Final = sys.version_info >= (3, 12)
# asyncio 3.14+ hands ``name`` to the task factory, so an eagerly started task
# runs its first step already named; before, the loop named the task after.
_FACTORY_GETS_NAME: Final = sys.version_info >= (3, 14)
# call_soon_threadsafe returns a handle other threads may cancel (asyncio 3.14+).
_THREADSAFE_HANDLES: Final = STDLIB_THREADSAFE_HANDLE is not None

# asyncio.constants.DEBUG_STACK_DEPTH
_DEBUG_STACK_DEPTH: Final = 10


@mypyc_attr(allow_interpreted_subclasses=True)
class BaseLoop:
    """Scheduling core shared by every aloop loop."""

    def __init__(self, *, backend: object = None, virtual_time: object = False) -> None:
        """``backend``: "epoll" or "poll" (default: epoll where the OS has it).

        ``virtual_time``: True, or a ``VirtualClock``, runs the loop on virtual
        time (see ``aloop._core.clock``).
        """
        # Counts as closed until fully built, so __del__ leaves a half-built loop alone.
        self._closed = True
        # Checked here, not by mypyc's typed arguments: its message names
        # neither the parameter nor what it accepts. Before any fd is opened.
        vclock = _virtual_clock_argument(virtual_time)
        backend_name = _backend_argument(backend)
        self._stopping = False
        # A list, not a deque: mypyc compiles list append and indexing to C,
        # where each deque method is a generic Python method call. An
        # iteration runs the entries from _ready_head on, setting each slot to
        # None as its handle runs; see _run_once for when run slots are
        # deleted. The list object itself is never replaced, so a
        # call_soon_threadsafe from another thread cannot append to a stale one.
        self._ready: list[Handle | None] = []
        # Slots before this index have run. Zero whenever the list is empty,
        # so the list is non-empty exactly when a handle is waiting.
        self._ready_head = 0
        self._timers = TimerQueue()
        # asyncio's name for the timer heap; the very same list.
        self._scheduled: list[TimerHandle] = self._timers.heap
        self._thread_id: int | None = None
        self._clock_resolution: float = time.get_clock_info("monotonic").resolution
        self._exception_handler: Callable[[Any, dict[str, Any]], object] | None = None
        self._debug = False
        # Any type, as asyncio's attribute: a typed one would refuse a value
        # (say a Decimal) with mypyc's message; only debug mode reads it.
        self.slow_callback_duration: Any = 0.1
        self._current_handle: Handle | None = None
        self._task_factory: Callable[..., Any] | None = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth: int | None = None
        self._asyncgens: weakref.WeakSet[AsyncGenerator[Any, Any]] = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self._default_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._old_agen_hooks: Any = None
        self._instruments: Instruments | None = None
        # The compiled trace ring / step counters (aloop._core.recorder), or None.
        self._recorder: Recorder | None = None
        # The state of Loop's network and process parts (aloop.network,
        # aloop.processes), made on first use. Declared here, in the native
        # struct: an attribute set anywhere else makes CPython create the
        # loop's instance __dict__, which every method call made from C (a
        # Task's loop.call_soon) then searches before the class.
        # Open transports by fd (add_reader refuses their fds).
        self._net_transports: weakref.WeakValueDictionary[int, Any] | None = None
        # Listening Unix sockets -> their file's inode (removed on close).
        self._net_unix_inodes: dict[socket.socket, int] | None = None
        self._signal_state: SignalHandlers | None = None
        self._child_state: ChildWatchers | None = None
        # Large reads and writes must not make glibc's heap shrink and regrow
        # (page faults) on every message: see aloop._io.heap.
        heap.raise_trim_threshold()
        self._poller = Poller(backend_name)
        self._fds = FdTable(self._poller)
        self._waker = Waker()
        self._waker_fd = self._waker.fileno()
        self._poller.register(self._waker_fd, READ)
        self._polling = False
        # True while this loop, running in the main thread, is the signal
        # wakeup fd's owner for its run (see aloop._io.wakeup).
        self._signals_claimed = False
        # A forked child must not share this loop's epoll and wakeup fds.
        self._pid = os.getpid()
        # Counters for monitors and the watchdog, read from other threads: an
        # int bump per handle and per poll, nothing more on the hot path.
        # Only ints and bools: another thread must never read an object
        # reference that this thread may be dropping at that very moment.
        self._iterations = 0
        self._handles_run = 0
        self._polls = 0
        self._io_events = 0
        self._measure_idle = False
        self._idle_time = 0.0
        # perf_counter() when the measured poll in progress began, else 0.0:
        # a monitor counts a long wait as idle before it ends.
        self._poll_started = 0.0
        self._vclock: VirtualClock | None = vclock
        self.set_debug(coroutines._is_debug_mode())  # type: ignore[attr-defined]
        self._closed = False

    # -- state ---------------------------------------------------------------

    def time(self) -> float:
        """The loop's clock: ``time.monotonic()``, or the virtual clock's time."""
        clock = self._vclock
        if clock is not None:
            return clock.now
        return _monotonic()

    @property
    def virtual_clock(self) -> VirtualClock | None:
        """The ``VirtualClock`` driving this loop, or None on real time."""
        return self._vclock

    def use_virtual_time(self, clock: object = None) -> VirtualClock:
        """Switch this (stopped, timer-less) loop to virtual time; return the clock."""
        if clock is None:
            clock = VirtualClock()
        elif not isinstance(clock, VirtualClock):
            raise TypeError(f"clock must be a VirtualClock or None, not {type(clock).__name__!r}")
        if self.is_running():
            raise RuntimeError("cannot switch a running event loop to virtual time")
        if self._timers.heap:
            raise RuntimeError("cannot switch to virtual time with timers scheduled on real time")
        self._vclock = clock
        return clock

    def is_running(self) -> bool:
        return self._thread_id is not None

    def is_closed(self) -> bool:
        return self._closed

    def get_debug(self) -> bool:
        return self._debug

    def set_debug(self, enabled: object) -> None:
        # asyncio takes any value and uses its truth.
        enabled = bool(enabled)
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            depth = self._coroutine_origin_tracking_saved_depth
            sys.set_coroutine_origin_tracking_depth(depth if depth is not None else 0)
        self._coroutine_origin_tracking_enabled = enabled

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def _check_running(self) -> None:
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    # -- scheduling callbacks ------------------------------------------------

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Run ``callback(*args)`` on the next iteration, in FIFO order."""
        handle = _new_handle(self, callback, args, context, "call_soon")
        instruments = self._instruments
        if instruments is not None and instruments.schedules:
            _note_scheduled(instruments, callback)
        recorder = self._recorder
        if recorder is not None and args:
            woken(recorder, callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Like ``call_soon``, from any thread; wakes a sleeping loop at once.

        On 3.14+ the handle may be cancelled from any thread, as asyncio's.
        """
        if _THREADSAFE_HANDLES:
            handle = _new_threadsafe_handle(self, callback, args, context)
        else:
            handle = _new_handle(self, callback, args, context, "call_soon_threadsafe")
        self._ready.append(handle)
        # The loop's own thread needs no wake-up unless it is inside poll:
        # a signal handler runs there, and poll resumes after it returns.
        if self._polling or _get_ident() != self._thread_id:
            self._waker.wake()
        return handle

    # ``delay`` and ``when`` are typed ``object``, with a float fast path: a
    # typed float argument makes mypyc refuse anything else with its own
    # message ("float object expected; got str") where asyncio's differs.

    def call_later(
        self,
        delay: object,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds."""
        if isinstance(delay, float):
            return _new_timer(self, self.time() + delay, callback, args, context)
        return _new_timer(self, _later(self.time(), delay), callback, args, context)

    def call_at(
        self,
        when: object,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        """Run ``callback(*args)`` at loop time ``when``."""
        if isinstance(when, float):
            return _new_timer(self, when, callback, args, context)
        if when is None:
            raise TypeError("when cannot be None")
        return _new_timer(self, _as_when(when), callback, args, context)

    # -- futures and tasks ---------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = _FUTURES_NS["Future"](loop=self)
        return future

    def create_task(
        self,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        *,
        name: Any = None,
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        """Wrap ``coro`` in a Task (or the task factory's product) and schedule it."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if kwargs and not _HAS_EAGER_TASKS:
            _refuse_eager_start(kwargs)
        instruments = self._instruments
        if instruments is None:
            task = _make_task(self, coro, name, context, kwargs)
        else:
            # The Task queues its first step while being built; report that
            # after the spawn, not before it.
            instruments.defer_schedules()
            try:
                task = _make_task(self, coro, name, context, kwargs)
            except BaseException:
                instruments.spawned(None)
                raise
            instruments.spawned(task)
        recorder = self._recorder
        if recorder is not None:
            spawned(recorder, task, context)
        return task

    def set_task_factory(self, factory: Callable[..., Any] | None) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Callable[..., Any] | None:
        return self._task_factory

    # -- I/O readiness ---------------------------------------------------------

    # The public add_/remove_ methods of ``aloop.Loop`` first refuse an fd that a
    # transport owns; the loop's own transports and watchers use these.

    def _add_reader(
        self,
        fd: Any,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Call ``callback(*args)`` in ``context`` (else a copy of the current one)
        whenever ``fd`` is readable."""
        return self._add_io(fd, callback, args, False, context)

    def _add_writer(
        self,
        fd: Any,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """Call ``callback(*args)`` in ``context`` (else a copy of the current one)
        whenever ``fd`` is writable."""
        return self._add_io(fd, callback, args, True, context)

    def _remove_reader(self, fd: Any) -> bool:
        return self._remove_io(fd, False)

    def _remove_writer(self, fd: Any) -> bool:
        return self._remove_io(fd, True)

    def _add_io(
        self,
        fd: Any,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        write: bool,
        context: contextvars.Context | None = None,
    ) -> Handle:
        """``_add_reader``/``_add_writer`` with positional arguments only: the
        transports' cores call this, as a keyword costs the compiled call a
        keyword parse each time."""
        fileno = fileobj_to_fd(fd)
        self._check_closed()
        # No callback check, even in debug mode: asyncio's add_reader has none
        # (a non-callable fails when the fd is ready, in the exception handler).
        handle = Handle(callback, args, self, context)
        self._fds.add(fileno, handle, write, fd)
        return handle

    def _remove_io(self, fd: Any, write: bool) -> bool:
        if self._closed:
            return False
        # By the object as registered too: a socket closed since (fileno() -1)
        # is still removed, as selectors finds it.
        fds = self._fds
        return fds.remove(fds.fd_of(fd), write)

    # -- running ---------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until ``stop()`` is called."""
        self._run_forever_setup()
        try:
            while True:
                _run_once(self)
                if self._stopping:
                    break
        finally:
            self._run_forever_cleanup()

    def _run_forever_setup(self) -> None:
        self._check_closed()
        if os.getpid() != self._pid:
            raise RuntimeError(
                "this event loop was created in another process (before fork()); "
                "create a new event loop in the child"
            )
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = _get_ident()
        if self._thread_id == threading.main_thread().ident:
            self._signals_claimed = self._waker.claim_signals()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
        )
        events._set_running_loop(self)  # type: ignore[arg-type]

    def _run_forever_cleanup(self) -> None:
        recorder = self._recorder
        if recorder is not None:
            stopped(recorder)
        self._stopping = False
        self._thread_id = None
        if self._signals_claimed:
            self._signals_claimed = False
            # add_signal_handler's handlers keep the wakeup fd until removed.
            handlers = self._signal_state
            if handlers is None or not len(handlers):
                self._waker.release_signals()
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def stop(self) -> None:
        """Stop after the current iteration; ``run_forever`` then returns."""
        self._stopping = True

    def _run_once(self) -> None:
        """One iteration (asyncio's name for it, which outside tools call).

        ``run_forever`` calls the module function directly.
        """
        _run_once(self)

    def _idle_virtual(self, clock: VirtualClock) -> None:
        """Nothing is ready on a virtual-time loop: see I/O, wait for held work, or jump."""
        if len(self._fds):
            # Real sockets, pipes and children keep working under virtual time.
            _poll(self, 0.0)
            if self._ready:
                return
        timers = self._timers
        if timers.heap and timers.first_when() <= clock.now:
            return  # advance() already made it due: run it before going idle
        if clock.has_idle_waiters():
            clock.wake_idle_waiters()
            return
        if clock.holds:
            # Outside work (an executor job, a hold) will wake the loop; wait
            # for it in real time, re-checking now and then for released holds.
            _poll(self, HOLD_RECHECK)
            return
        if timers.heap and clock.autojump:
            clock.jump_to(timers.first_when())
            return
        if len(self._fds):
            _poll(self, -1.0)  # only I/O from outside can wake the loop now
            return
        raise VirtualTimeDeadlock(describe_deadlock(self, clock))

    def _run_timed(self, handle: Handle | None) -> None:
        """Run ``handle`` and warn if it took longer than ``slow_callback_duration``."""
        assert handle is not None
        try:
            self._current_handle = handle
            start = self.time()
            run_handle(handle)
            elapsed = self.time() - start
            if elapsed >= self.slow_callback_duration:
                errors._logger().warning(
                    "Executing %s took %.3f seconds", debug.format_handle(handle), elapsed
                )
        finally:
            self._current_handle = None
            handle = None  # see run_handle

    # -- instruments -------------------------------------------------------------

    def add_instrument(self, instrument: object) -> None:
        """Attach an instrument: an object with hook methods (``aloop._core.hooks``),
        or a ``RecorderClient`` (a trace, step counts: ``aloop._core.recorder``)."""
        if isinstance(instrument, RecorderClient):
            self._recorder = attach(self, self._recorder, instrument)
            return
        if self._instruments is None:
            self._instruments = Instruments()
        self._instruments.add(instrument)

    def remove_instrument(self, instrument: object) -> None:
        """Detach an instrument; ``KeyError`` if it is not attached."""
        recorder = self._recorder
        if isinstance(instrument, RecorderClient):
            if recorder is None or instrument not in recorder.clients:
                raise KeyError(f"instrument {instrument!r} is not attached")
            self._recorder = detach(self, recorder, instrument)
            return
        if self._instruments is None:
            raise KeyError(f"instrument {instrument!r} is not attached")
        self._instruments.remove(instrument)
        if not self._instruments.attached:
            self._instruments = None

    # -- errors ------------------------------------------------------------------

    def get_exception_handler(self) -> Callable[[Any, dict[str, Any]], object] | None:
        return self._exception_handler

    def set_exception_handler(
        self, handler: Callable[[Any, dict[str, Any]], object] | None
    ) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    # ``context`` untyped: asyncio's errors for a non-dict, not mypyc's.
    def default_exception_handler(self, context: Any) -> None:
        """Log ``context`` in asyncio's format."""
        errors.default_exception_handler(context, self._current_handle)

    def call_exception_handler(self, context: Any) -> None:
        """Report an error that has no caller to propagate to."""
        errors.call_exception_handler(self, context)

    # -- async generators --------------------------------------------------------

    def _asyncgen_firstiter_hook(self, agen: AsyncGenerator[Any, Any]) -> None:
        if self._asyncgens_shutdown_called:
            debug.warn_late_asyncgen(self, agen)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen: AsyncGenerator[Any, Any]) -> None:
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    # -- closing -----------------------------------------------------------------

    def _close_core(self) -> None:
        """Drop queued work and release the poller and wakeup fds."""
        self._closed = True
        self._ready.clear()
        self._ready_head = 0
        self._timers.clear()
        if os.getpid() == self._pid:
            self._fds.clear()
        # else: a forked child shares the parent's epoll instance; unregistering
        # here would change the parent's interest set. Only close our copies.
        self._poller.close()
        self._waker.close()


def _new_handle(
    loop: BaseLoop,
    callback: Callable[..., object],
    args: tuple[Any, ...],
    context: contextvars.Context | None,
    method: str,
) -> Handle:
    """A handle for ``method``, with asyncio's checks (thread and callback in debug mode).

    Functions like this one are module-level on purpose: compiled code calls
    them directly, while a method of ``BaseLoop`` (which allows interpreted
    subclasses such as ``Loop``) is reached through a lookup on every call.
    """
    if loop._closed:
        raise RuntimeError("Event loop is closed")
    if not loop._debug:
        return Handle(callback, args, loop, context)
    if method != "call_soon_threadsafe":
        debug.check_thread(loop._thread_id)
    debug.check_callback(callback, method)
    handle = Handle(callback, args, loop, context)
    handle._source_traceback = debug.capture_stack()
    return handle


def _new_threadsafe_handle(
    loop: BaseLoop,
    callback: Callable[..., object],
    args: tuple[Any, ...],
    context: contextvars.Context | None,
) -> Handle:
    """``call_soon_threadsafe``'s handle on 3.14+: one other threads may cancel."""
    if loop._closed:
        raise RuntimeError("Event loop is closed")
    if not loop._debug:
        return ThreadSafeHandle(callback, args, loop, context)
    debug.check_callback(callback, "call_soon_threadsafe")
    handle = ThreadSafeHandle(callback, args, loop, context)
    handle._source_traceback = debug.capture_stack()
    return handle


def _note_scheduled(instruments: Instruments, callback: object) -> None:
    """Report a task step being queued (``task_scheduled``)."""
    owner = owner_of(callback)
    if isinstance(owner, _TASK_TYPES):
        instruments.scheduled(owner)


def _later(now: float, delay: object) -> float:
    """``now + delay`` for a delay that is not a float, failing as asyncio does."""
    if isinstance(delay, int):
        return now + float(delay)
    if delay is None:
        raise TypeError("delay must not be None")
    # Generic addition (both operands boxed, not a float add that mypyc
    # would unbox): asyncio's own result or TypeError, e.g. for a complex.
    start: Any = now
    when: Any = start + delay
    return _as_when(when)


def _as_when(when: Any) -> float:
    """A timer's time as a float; asyncio's TypeError for what is not a number.

    asyncio keeps any ``when`` in its timer heap, where comparing it with
    another timer's raises; this raises that same error, even on an empty heap.
    """
    if isinstance(when, float):
        return when
    if isinstance(when, int):
        return float(when)
    _ = when < 0.0  # TypeError ("'<' not supported between ...") unless comparable
    return float(when)


def _virtual_clock_argument(virtual_time: object) -> VirtualClock | None:
    """The clock that ``virtual_time=`` asks for (True, False or a ``VirtualClock``)."""
    if virtual_time is False:
        return None
    if virtual_time is True:
        return VirtualClock()
    if isinstance(virtual_time, VirtualClock):
        return virtual_time
    raise TypeError(
        "virtual_time must be True, False or an aloop VirtualClock, "
        f"not {type(virtual_time).__name__} {virtual_time!r}"
    )


def _backend_argument(backend: object) -> str | None:
    """The I/O backend that ``backend=`` names ('epoll', 'poll' or None: the best)."""
    if backend is None:
        return None
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be 'epoll', 'poll' or None, not {type(backend).__name__} {backend!r}"
        )
    if backend not in ("epoll", "poll"):
        raise ValueError(
            f"unknown I/O backend {backend!r}: backend must be 'epoll', 'poll' or None"
        )
    return backend


def _new_timer(
    loop: BaseLoop,
    when: float,
    callback: Callable[..., object],
    args: tuple[Any, ...],
    context: contextvars.Context | None,
) -> TimerHandle:
    if loop._closed:
        raise RuntimeError("Event loop is closed")
    if loop._debug:
        debug.check_thread(loop._thread_id)
        debug.check_callback(callback, "call_at")
    timers = loop._timers
    timer = TimerHandle(when, timers.next_seq(), callback, args, loop, context)
    if loop._debug:
        timer._source_traceback = debug.capture_stack()
    timers.push(timer)
    return timer


def _run_once(loop: BaseLoop) -> None:
    """One iteration: poll for I/O, collect due timers, run what is ready.

    A function, not a method: compiled code calls it directly, where a method
    of a class that allows interpreted subclasses is called through a lookup.
    """
    ready = loop._ready
    timers = loop._timers
    loop._iterations += 1
    if timers.cancelled_count:
        timers.prune()
    if ready or loop._stopping:
        # Something is runnable: still look at I/O, without waiting, as asyncio
        # does every iteration. Code that wrote to a peer in this process (a
        # socketpair, an in-process server) relies on the peer having seen the
        # bytes after the writer yields a loop iteration or two.
        if len(loop._fds):
            _poll(loop, 0.0)
    elif loop._vclock is not None:
        loop._idle_virtual(loop._vclock)
    else:
        timeout = -1.0
        if timers.heap:
            timeout = timers.first_when() - loop.time()
            if timeout < 0.0:
                timeout = 0.0
        _poll(loop, timeout)
    if timers.heap:
        timers.pop_due(loop.time() + loop._clock_resolution, ready)
    ntodo = len(ready)
    done = loop._ready_head
    instruments = loop._instruments
    # Hooks and debug timing go through _run_observed; a recorder alone (a
    # trace, step counts) is called inline, it is on for whole runs.
    hooked = loop._debug or (instruments is not None and instruments.per_handle)
    recorder = loop._recorder
    handle: Handle | None = None
    try:
        while done < ntodo:
            handle = ready[done]
            ready[done] = None  # a run handle is let go of at once, as by popleft
            done += 1
            if handle is not None and not handle._cancelled:
                if hooked:
                    _run_observed(loop, handle)
                else:
                    if recorder is not None:
                        begin(recorder, handle)
                    run_handle(handle)
                    loop._handles_run += 1
    finally:
        # After an exception (KeyboardInterrupt) the rest stay queued, as in asyncio.
        # Deleting run slots from the front of a list moves the rest and
        # builds a slice: done when all has run (emptying the list), else once
        # _COMPACT_AFTER slots have run, not in every iteration of a chain
        # of callbacks each scheduling the next.
        if done == len(ready):
            ready.clear()
            done = 0
        elif done >= _COMPACT_AFTER:
            del ready[:done]
            done = 0
        loop._ready_head = done
    handle = None  # see run_handle: no reference cycles through this frame


def _run_observed(loop: BaseLoop, handle: Handle | None) -> None:
    """Run one handle with the recorder, the instrument hooks and debug timing."""
    assert handle is not None
    recorder = loop._recorder
    if recorder is not None:
        begin(recorder, handle)
    instruments = loop._instruments
    task: asyncio.Task[Any] | None = None
    if instruments is not None:
        if instruments.task_steps:
            owner = owner_of(handle._callback)
            if isinstance(owner, _TASK_TYPES):
                task = owner
                instruments.call("before_task_step", task)
        if instruments.callbacks:
            instruments.call("before_callback", handle)
    if loop._debug:
        loop._run_timed(handle)
    else:
        run_handle(handle)
    loop._handles_run += 1
    instruments = loop._instruments
    if instruments is not None:
        if instruments.callbacks:
            instruments.call("after_callback", handle)
        if task is not None:
            instruments.call("after_task_step", task)
            if task.done():
                instruments.call("task_exited", task)
    handle = None  # see run_handle: no reference cycles through this frame
    task = None


def _poll(loop: BaseLoop, timeout: float) -> None:
    instruments = loop._instruments
    if instruments is not None and instruments.io_waits:
        instruments.call("before_io_wait", timeout)
    recorder = loop._recorder
    if recorder is not None:
        wait_begin(recorder, timeout)
    measure = loop._measure_idle
    started = 0.0
    if measure:
        started = _perf_counter()
        loop._poll_started = started
    loop._polling = True
    try:
        event_list = loop._poller.poll(timeout, len(loop._fds) + 1)  # + the waker
    finally:
        loop._polling = False
    loop._polls += 1
    if measure:
        loop._idle_time += _perf_counter() - started
        loop._poll_started = 0.0
    if instruments is not None and instruments.io_waits:
        instruments.call("after_io_wait", len(event_list))
    if recorder is not None:
        wait_end(recorder, len(event_list))
    if not event_list:
        return
    loop._io_events += len(event_list)
    waker_fd = loop._waker_fd
    fds = loop._fds
    ready = loop._ready
    signums = b""
    for fd, mask in event_list:
        if fd == waker_fd:
            signums = loop._waker.drain()
        else:
            fds.dispatch(fd, mask, ready)
    if len(signums):
        _deliver_signals(loop, signums)


def _deliver_signals(loop: BaseLoop, signums: bytes) -> None:
    """Signals woke the poll: queue the loop's handlers, run Python-level ones now.

    CPython runs a Python-level handler (SIGINT's KeyboardInterrupt,
    asyncio.Runner's) when the main thread next executes bytecode; compiled
    code between here and the next poll executes none. pthread_sigmask runs
    pending handlers before it returns (after the I/O events above are
    queued, so none is lost if a handler raises).
    """
    handlers = loop._signal_state
    if handlers is not None:
        handlers.dispatch(signums)
    signal.pthread_sigmask(signal.SIG_BLOCK, ())


def _make_task(
    loop: BaseLoop,
    coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
    name: Any,
    context: contextvars.Context | None,
    kwargs: dict[str, Any],
) -> asyncio.Task[Any]:
    """The task factory's product, else an asyncio Task (a function: see ``_run_once``)."""
    factory = loop._task_factory
    if factory is None:
        task_cls = _TASKS_NS["Task"]
        if kwargs:
            task: asyncio.Task[Any] = task_cls(
                coro, loop=loop, name=name, context=context, **kwargs
            )
        else:
            task = task_cls(coro, loop=loop, name=name, context=context)
        if loop._debug:
            _trim_source_traceback(task)
        return task
    if context is not None:
        kwargs["context"] = context
    if _FACTORY_GETS_NAME:
        if name is not None:
            kwargs["name"] = name
        made: asyncio.Task[Any] = factory(loop, coro, **kwargs)
    else:
        made = factory(loop, coro, **kwargs)
        if name is not None:
            made.set_name(name)
    return made


def _refuse_eager_start(kwargs: dict[str, Any]) -> None:
    """On 3.11, accept ``eager_start=False`` (what 3.11 does anyway), refuse True."""
    if kwargs.pop("eager_start", None):
        raise TypeError("eager_start=True needs Python 3.12 or later (eager tasks)")


def _trim_source_traceback(task: asyncio.Task[Any]) -> None:
    """Drop aloop's own frames from a debug-mode task's creation traceback."""
    stack = getattr(task, "_source_traceback", None)
    if stack:
        debug.trim_own_frames(stack)
