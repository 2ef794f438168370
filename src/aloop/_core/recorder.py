"""The compiled recorder behind traces and per-step task statistics.

The scheduler calls the functions here directly (no instrument hooks, no
Python-level call per event) while ``loop._recorder`` is not None. The
recorder does two independent jobs, each switched on by its clients:

- *tracing*: a ring of compact records, three preallocated lists written at
  one index that wraps: ``codes`` (``payload * 16 + kind``), ``stamps``
  (``time.perf_counter()``) and ``objs`` (a string or float, only for the
  kinds that carry one). A record is a boundary or an instant; a task step or
  callback starts at its record and ends at the next boundary, so each
  callback costs one clock read. Tasks are recorded by ``id()``, never by
  reference: the ring keeps no task alive. Codes are stored as floats (exact
  below 2**53, and ids times 16 stay far below): a float is boxed from
  CPython's free list, an int this large needs an allocation. ``aloop.tooling.trace`` turns a
  window of the ring into Chrome trace JSON when asked.
- *counting*: each task's steps, time in steps and longest step, in a
  ``TaskStats`` per live task (a ``StatsTable`` keyed by ``id(task)``), for
  ``aloop.inspect.track(loop, detail=True)`` and ``Monitor(detail=True)``.

Clients attach through ``loop.add_instrument(client)`` when they have an
``_aloop_record(loop, recorder)`` method (and ``_aloop_unrecord``); see
``attach``/``detach``. Only the loop's thread writes; other threads read the
ring through ``aloop.tooling.trace``, which copies it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast, final

from aloop._core.handles import Handle, describe_callback, run_handle

if TYPE_CHECKING:
    from aloop._core.scheduler import BaseLoop

# Typed as returning an object: the float it returns goes into the ring as
# it is, not unboxed and boxed again.
_clock: Final[Callable[[], object]] = time.perf_counter
_Task: Final = asyncio.Task
_Future: Final = asyncio.Future
# Unbound: calling it skips looking "done" up on every call.
_task_done: Final = asyncio.Task.done

# Record kinds (the low four bits of a code).
K_STEP: Final = 0  # a task step starts; payload: id(task)
K_CALLBACK: Final = 1  # another callback starts; obj: its description
K_IDLE: Final = 2  # the batch of callbacks ended
K_WAIT: Final = 3  # an I/O wait starts; obj: the timeout
K_WAKE: Final = 4  # the I/O wait ended; payload: the event count
K_SPAWN: Final = 5  # instant: a task was made; payload: id(task); obj: its name
K_FINISHED: Final = 6  # instant, and a boundary: the step just run ended the task
K_FAILED: Final = 7  # (these three: payload id(task), obj its final name)
K_CANCELLED: Final = 8
KIND_BITS: Final = 16

# Plain callbacks are described once per function, not per call.
_DESCRIPTIONS_MAX: Final = 1024


@final
class TaskStats:
    """One task's steps and seconds of wall time in them."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.longest = 0.0


@final
class StatsTable:
    """``id(task)`` -> ``TaskStats``: open addressing over native ints.

    A dict would box the id for every lookup (an allocation per task step);
    here a lookup compares ints already stored. Linear probing; a removal
    shifts the entries after it back, so no tombstones.
    """

    def __init__(self) -> None:
        self.keys: list[int] = [0] * 64
        self.vals: list[TaskStats | None] = [None] * 64
        self.mask = 63
        self.used = 0

    def _find(self, key: int) -> int:
        """The slot holding ``key``, or the empty slot where it would go."""
        keys = self.keys
        mask = self.mask
        i = _slot(key, mask)
        while True:
            k = keys[i]
            if k == key or k == 0:
                return i
            i = (i + 1) & mask

    def get(self, key: int) -> TaskStats | None:
        i = self._find(key)
        return self.vals[i] if self.keys[i] == key else None

    def put(self, key: int, stats: TaskStats) -> None:
        if (self.used + 1) * 2 > self.mask + 1:
            self._grow()
        i = self._find(key)
        if self.keys[i] == 0:
            self.used += 1
            self.keys[i] = key
        self.vals[i] = stats

    def pop(self, key: int) -> TaskStats | None:
        keys = self.keys
        vals = self.vals
        mask = self.mask
        i = self._find(key)
        if keys[i] == 0:
            return None
        found = vals[i]
        j = i
        while True:
            j = (j + 1) & mask
            k = keys[j]
            if k == 0:
                break
            home = _slot(k, mask)
            # Move k back into the hole unless its home lies in (hole, j].
            if (i < j and (home <= i or home > j)) or (i > j and home <= i and home > j):
                keys[i] = k
                vals[i] = vals[j]
                i = j
        keys[i] = 0
        vals[i] = None
        self.used -= 1
        return found

    def _grow(self) -> None:
        keys = self.keys
        vals = self.vals
        size = (self.mask + 1) * 2
        self.keys = [0] * size
        self.vals = [None] * size
        self.mask = size - 1
        self.used = 0
        for n in range(len(keys)):
            stats = vals[n]
            if keys[n] != 0 and stats is not None:
                self.put(keys[n], stats)

    def __len__(self) -> int:
        return self.used


def _slot(key: int, mask: int) -> int:
    # Objects are 16-byte aligned: the low bits of an id carry nothing.
    return ((key >> 4) ^ (key >> 14)) & mask


@final
class Recorder:
    """A loop's trace ring and per-task step counters (see the module doc)."""

    def __init__(self) -> None:
        self.clients: list[object] = []
        # Tracing: the ring.
        self.tracing = False
        self.capacity = 0
        self.codes: list[float] = []
        self.stamps: list[object] = []
        self.objs: list[object] = []
        self.index = 0  # the slot the next record goes to
        self.total = 0  # records ever written; record number t is in slot ...
        self.descriptions: dict[object, str] = {}
        # Counting: the step being timed and every task's stats.
        self.counting = False
        self.stats = StatsTable()
        self.open: TaskStats | None = None
        self.open_since = 0.0
        self.on_exit: Callable[[Any, TaskStats], object] | None = None
        self.on_cancel: Callable[[Any], object] | None = None

    def start_ring(self, capacity: int) -> int:
        """Make the ring hold at least ``capacity`` records; the next record's number."""
        if capacity > self.capacity:
            codes, stamps, objs = self.window(self.total - self.capacity, self.total)
            filled = len(codes)
            pad = capacity - filled
            self.codes = codes + [0.0] * pad
            self.stamps = stamps + [0.0] * pad
            self.objs = objs + [None] * pad
            self.capacity = capacity
            self.index = filled % capacity
        self.tracing = True
        return self.total

    def stop_ring(self) -> None:
        self.tracing = False
        self.codes = []
        self.stamps = []
        self.objs = []
        self.capacity = 0
        self.index = 0

    def window(self, first: int, stop: int) -> tuple[list[float], list[object], list[object]]:
        """Copies of records ``first`` to ``stop - 1`` still in the ring, oldest first."""
        total = self.total
        first = max(first, total - self.capacity, 0)
        if stop > total:
            stop = total
        if first >= stop:
            return [], [], []
        cap = self.capacity
        start = (self.index - (total - first)) % cap
        end = (self.index - (total - stop)) % cap
        if start < end:
            return self.codes[start:end], self.stamps[start:end], self.objs[start:end]
        return (
            self.codes[start:] + self.codes[:end],
            self.stamps[start:] + self.stamps[:end],
            self.objs[start:] + self.objs[:end],
        )


def attach(loop: BaseLoop, recorder: Recorder | None, client: object) -> Recorder:
    """Add ``client`` to the loop's recorder (made if ``None``); the recorder."""
    rec = recorder if recorder is not None else Recorder()
    if client not in rec.clients:
        rec.clients.append(client)
        client._aloop_record(loop, rec)  # type: ignore[attr-defined]
    return rec


def detach(loop: BaseLoop, rec: Recorder, client: object) -> Recorder | None:
    """Remove ``client``; the recorder, or None once it has no client left."""
    rec.clients.remove(client)
    client._aloop_unrecord(loop, rec)  # type: ignore[attr-defined]
    return rec if rec.clients else None


def _put(rec: Recorder, code: float, stamp: object, obj: object) -> None:
    i = rec.index
    rec.codes[i] = code
    rec.stamps[i] = stamp
    rec.objs[i] = obj
    i += 1
    if i == rec.capacity:
        i = 0
    rec.index = i
    rec.total += 1


def _close_step(rec: Recorder, stamp: object) -> None:
    stats = rec.open
    if stats is not None:
        spent = cast(float, stamp) - rec.open_since
        stats.steps += 1
        stats.seconds += spent
        if spent > stats.longest:
            stats.longest = spent
        rec.open = None


def begin(rec: Recorder, handle: Handle) -> Any:
    """A callback is about to run: record it; its task if it is a task step."""
    owner = getattr(handle._callback, "__self__", None)
    now = _clock()
    if rec.counting:
        _close_step(rec, now)
    if isinstance(owner, _Task):
        if rec.tracing:
            _put(rec, float(id(owner)) * KIND_BITS + K_STEP, now, None)
        if rec.counting:
            key = id(owner)
            stats = rec.stats.get(key)
            if stats is None:
                stats = TaskStats()
                rec.stats.put(key, stats)
            rec.open = stats
            rec.open_since = cast(float, now)
        return owner
    if rec.tracing:
        _put(rec, K_CALLBACK, now, _describe(rec, handle))
    return None


def end_step(rec: Recorder, task: Any) -> None:
    """The step of ``task`` just ran: if it ended the task, record how."""
    if _task_done(task):
        _exited(rec, task)


def _exited(rec: Recorder, task: Any) -> None:
    now = _clock()
    key = id(task)
    if rec.tracing:
        if task.cancelled():
            kind = K_CANCELLED
        elif getattr(task, "_exception", None) is not None:
            kind = K_FAILED
        else:
            kind = K_FINISHED
        _put(rec, float(key) * KIND_BITS + kind, now, task.get_name())
    if rec.counting:
        stats = rec.open
        _close_step(rec, now)
        done = rec.stats.pop(key)
        if done is None:
            done = stats if stats is not None else TaskStats()
        if rec.on_exit is not None:
            rec.on_exit(task, done)


def end_batch(rec: Recorder) -> None:
    """The batch of callbacks is done: the last one ended now."""
    now = _clock()
    if rec.counting:
        _close_step(rec, now)
    if rec.tracing:
        _put(rec, K_IDLE, now, None)


def spawned(rec: Recorder, task: Any) -> None:
    """``create_task`` made ``task``."""
    key = id(task)
    if rec.counting:
        rec.stats.put(key, TaskStats())  # a new task may reuse a dead one's id
    if rec.tracing:
        _put(rec, float(key) * KIND_BITS + K_SPAWN, _clock(), task.get_name())


def wait_begin(rec: Recorder, timeout: float) -> None:
    if rec.tracing:
        _put(rec, K_WAIT, _clock(), timeout)


def wait_end(rec: Recorder, events: int) -> None:
    if rec.tracing:
        _put(rec, float(events * KIND_BITS + K_WAKE), _clock(), None)


def woken(rec: Recorder, callback: object, args: tuple[Any, ...]) -> None:
    """``call_soon(callback, *args)``: tell ``on_cancel`` when a cancel wakes a task."""
    on_cancel = rec.on_cancel
    if on_cancel is None:
        return
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, _Task):
        fut = args[0]
        if isinstance(fut, _Future) and fut.cancelled():
            on_cancel(owner)


def run_ready(loop: BaseLoop, rec: Recorder, ntodo: int) -> None:
    """The run step while only the recorder observes (no debug, no hooks)."""
    ready = loop._ready
    handle: Handle | None = None
    task: Any = None
    for _ in range(ntodo):
        handle = ready.popleft()
        if handle._cancelled:
            continue
        task = begin(rec, handle)
        run_handle(handle)
        loop._handles_run += 1
        if task is not None and _task_done(task):
            _exited(rec, task)
    if ntodo:
        end_batch(rec)
    handle = None  # see run_handle: no reference cycles through this frame
    task = None


def _describe(rec: Recorder, handle: Handle) -> str:
    callback = handle._callback
    func = getattr(callback, "__func__", callback)
    key = getattr(func, "__code__", func)
    try:
        text = rec.descriptions.get(key)
    except TypeError:  # unhashable callable
        return repr(handle)
    if text is None:
        text = f"<{type(handle).__name__} {describe_callback(callback, None, False)}>"
        if len(rec.descriptions) >= _DESCRIPTIONS_MAX:
            rec.descriptions.clear()
        rec.descriptions[key] = text
    return text
