"""The compiled recorder behind traces and per-step task statistics.

The second of the two layers of instrumentation (the first, hooks, is
``aloop._core.hooks``). The scheduler calls the functions here directly, no
Python-level call per event, while ``loop._recorder`` is not None. A tool
attaches as a ``RecorderClient``: ``loop.add_instrument(client)`` calls its
``on_attach(loop, recorder)``, where it switches on what it needs through the
``Recorder``'s methods (``start_tracing``/``stop_tracing`` and ``window``
for the ring, ``start_counting``/``stop_counting`` and ``stats_of`` for
step counts); ``loop.remove_instrument(client)`` calls ``on_detach``. Only
the loop's thread writes; other threads read the ring through ``window``.
``aloop.tooling.trace`` and ``aloop.tooling.tasks`` are the clients.

The recorder does two independent jobs, each switched on by its clients:

- *tracing*: a ring of compact records, two preallocated lists written at
  one index that wraps: ``codes`` and ``objs`` (a string, float or tuple,
  only for the kinds that carry one). A code is an int (``payload * 16 +
  kind``), boxed once per task or kind and stored as it is; or a float, a
  clock reading (``time.perf_counter()``) that times the record after it;
  or, for a task step, the step's ``contextvars.Context`` (see *by context*
  below). A record is a boundary or an instant; a task step or callback
  starts at its record and ends at the next boundary (the next callback, an
  I/O wait, the loop stopping), so each callback costs at most one clock
  read (none when timed with its group, see GROUP), and an I/O wait's end
  shares the next record's reading. A reading is a record of its own, not a
  slot beside every record: most steps have none, and a slot would be
  written on every step. Tasks are recorded by ``id()``, never by
  reference: the ring keeps no task alive.
  ``aloop.tooling.trace`` turns a window of the ring into Chrome trace JSON
  when asked.
- *counting*: each task's steps, time in steps and longest step, in its
  ``TaskStats``, for ``aloop.inspect.track(loop, detail=True)`` and
  ``Monitor(detail=True)``.

Both need to know which task a step belongs to. Asking the step callback
for its task (``__self__``) and the task whether the step ended it cost more
than the rest of the bookkeeping, so neither is done per step. A task is
*registered* once: when it is spawned, or at the first of its steps the
recorder sees. It gets a ``TaskStats`` (which also holds its trace code),
filed under ``id(task)`` (``StatsTable``) and under its
``contextvars.Context`` (``ContextTable``), which a C task passes with every
step it schedules (``handle._context``); and one done callback, which
records the exit (it runs in an empty context, and shows in the task's
repr while the task is pending). A step is then a type check and a lookup
by identity. A Context shared by two live tasks is not filed: their steps
take the slow way, through ``__self__``.

*By context*: when only a trace records (no counting, no shared Context),
even that lookup is skipped. Its reads of the tables and of the task's
``TaskStats``, at random places in memory, cost more than the rest of a
step's bookkeeping once a thousand tasks' working set has left the CPU's
cache. The step's record holds the Context the step runs in, and the trace
finds the task when it is read (``aloop.tooling.trace``): spawn and exit
records carry the task's Context, and the live tasks give theirs. So that
every task is known there, tasks alive when a trace starts are registered
then (``start_tracing``). One cost: the ring holds those Contexts (and the
values of their context variables) until it wraps over them or stops.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
from collections.abc import Callable, Iterable
from types import MethodType
from typing import TYPE_CHECKING, Any, Final, cast, final

from mypy_extensions import i64, mypyc_attr

from aloop._core.handles import Handle, describe_callback, lookup, owner_of

if TYPE_CHECKING:
    from aloop._core.scheduler import BaseLoop

# Typed as returning an object: the float it returns goes into the ring as
# it is, not unboxed and boxed again.
_clock: Final[Callable[[], object]] = time.perf_counter
# The C Task, and the pure-Python one asyncio falls back to (not a subclass).
_PyTask: Final = asyncio.tasks._PyTask  # type: ignore[attr-defined]
_TASK_TYPES: Final = (asyncio.Task, _PyTask)
_HAS_GET_CONTEXT: Final = hasattr(asyncio.Task, "get_context")  # 3.12+
_Future: Final = asyncio.Future
_Method: Final = MethodType
# A C task's steps run as a TaskStepMethWrapper (scheduled by the task) or as
# its ``task_wakeup``, a builtin method (scheduled by the future it awaited).
_BUILTIN: Final = type(len)
# The recorder's done callbacks run in an empty context, not a copy of the
# spawning one (a copy per task would cost an allocation and keep the
# spawner's variables alive).
_NO_CONTEXT: Final = contextvars.Context()

# Record kinds (the low four bits of a code).
K_STEP: Final = 0  # a task step starts; payload: id(task)
K_CALLBACK: Final = 1  # another callback starts; obj: its description
K_IDLE: Final = 2  # the loop stopped: nothing runs
K_WAIT: Final = 3  # an I/O wait starts; obj: the timeout
K_WAKE: Final = 4  # the I/O wait ended; payload: the event count
K_SPAWN: Final = 5  # instant: a task was made; payload: id(task); obj: its Context
K_FINISHED: Final = 6  # instant and boundary, from the task's done callback
K_FAILED: Final = 7  # (these three: payload id(task), obj (its final name, its Context))
K_CANCELLED: Final = 8
KIND_BITS: Final = 16
# The codes of the kinds with no payload, boxed once (a record stores the
# object as it is).
_CODE_CALLBACK: Final[object] = K_CALLBACK
_CODE_IDLE: Final[object] = K_IDLE
_CODE_WAIT: Final[object] = K_WAIT

# Timing in groups: while callbacks average under BURST seconds each, the
# clock is read once per GROUP callbacks and the time between two readings is
# split evenly among the callbacks it covers. A clock read, and its record in
# the ring, cost a sizeable part of a short task step: reading once per
# group makes a trace of short steps cheap. The price: a callback that blocks
# inside a group has its time shared with up to GROUP - 1 others (marked
# estimated in a trace); the callbacks after it are timed alone until they
# are short again.
GROUP: Final = 16
BURST: Final = 5e-6

# Plain callbacks are described once per function, not per call.
_DESCRIPTIONS_MAX: Final = 1024


@final
class TaskStats:
    """A registered task: its steps, seconds of wall time in them, trace code."""

    def __init__(self, key: int) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.longest = 0.0
        # A K_STEP record's code, made once: a step stores it as it is.
        self.code: object = key * KIND_BITS + K_STEP
        self.context: object = None  # the task's Context, once filed by it


class _Table:
    """Open addressing from keys to ``TaskStats``: linear probing; a removal
    shifts the entries after it back, so no tombstones. ``None`` marks an
    empty slot. Keys are ints compared by value, or (``by_identity``) objects
    compared by identity and placed by ``id()``."""

    def __init__(self, by_identity: bool) -> None:
        self.by_identity = by_identity
        self.keys: list[object] = [None] * 64
        self.vals: list[TaskStats | None] = [None] * 64
        self.mask: i64 = 63
        self.used = 0

    def _find(self, key: object) -> int:
        """The slot holding ``key``, or the empty slot where it would go."""
        keys = self.keys
        mask = self.mask
        i = self._home(key)
        if self.by_identity:
            while True:
                k = keys[i]
                if k is key or k is None:
                    return i
                i = (i + 1) & mask
        while True:
            k = keys[i]
            if k is None or k == key:
                return i
            i = (i + 1) & mask

    def _home(self, key: object) -> int:
        return _slot(id(key) if self.by_identity else cast(int, key), self.mask)

    def get(self, key: object) -> TaskStats | None:
        return self.vals[self._find(key)]

    def put(self, key: object, stats: TaskStats) -> None:
        if (self.used + 1) * 2 > self.mask + 1:
            self._grow()
        i = self._find(key)
        if self.keys[i] is None:
            self.used += 1
            self.keys[i] = key
        self.vals[i] = stats

    def pop(self, key: object) -> TaskStats | None:
        keys = self.keys
        vals = self.vals
        i = self._find(key)
        if keys[i] is None:
            return None
        found = vals[i]
        j = i
        while True:
            j = (j + 1) & self.mask
            k = keys[j]
            if k is None:
                break
            if _moves_back(i, j, self._home(k)):
                keys[i] = k
                vals[i] = vals[j]
                i = j
        keys[i] = None
        vals[i] = None
        self.used -= 1
        return found

    def _grow(self) -> None:
        keys = self.keys
        vals = self.vals
        size = (self.mask + 1) * 2
        self.keys = [None] * size
        self.vals = [None] * size
        self.mask = size - 1
        self.used = 0
        for n in range(len(keys)):
            key = keys[n]
            stats = vals[n]
            if key is not None and stats is not None:
                self.put(key, stats)

    def __len__(self) -> int:
        return self.used


@final
class StatsTable(_Table):
    """``id(task)`` -> ``TaskStats``: ints compared by value (a dict would box
    the id for every lookup)."""

    def __init__(self) -> None:
        super().__init__(False)


@final
class ContextTable(_Table):
    """``contextvars.Context`` -> ``TaskStats``, by identity (Contexts are unhashable).

    A probe compares object pointers: the cheapest lookup the per-step path
    can make. It holds the Contexts it files (their tasks hold them anyway)
    so that no other Context can take a filed one's id while it is filed.
    """

    def __init__(self) -> None:
        super().__init__(True)


def _moves_back(hole: int, j: int, home: int) -> bool:
    """Linear probing removal: may the key at ``j`` (home slot ``home``) fill ``hole``?"""
    return (hole < j and (home <= hole or home > j)) or (hole > j and home <= hole and home > j)


def _slot(key: int, mask: int) -> int:
    # Objects are 16-byte aligned: the low bits of an id carry nothing.
    return ((key >> 4) ^ (key >> 14)) & mask


@final
class Recorder:
    """A loop's trace ring and per-task step counters (see the module doc)."""

    def __init__(self) -> None:
        self.clients: list[RecorderClient] = []
        # Tracing: the ring, kept while at least one trace (``tracers``) uses it.
        self.tracing = False
        self.tracers = 0
        self.capacity: i64 = 0
        self.codes: list[object] = []
        self.objs: list[object] = []
        self.index: i64 = 0  # the slot the next record goes to
        self.woke = -1  # events of an I/O wait that ended, not yet recorded
        self.total = 0  # records ever written; record number t is in slot ...
        # id(code or callable) -> (it, its text). By id: hashing a code object
        # hashes its bytecode and constants, on every callback.
        self.descriptions: dict[int, tuple[object, str]] = {}
        # Timing: the last clock reading, the callbacks begun since (``run``)
        # and how many more to begin without one (``skip``); see GROUP.
        self.stamp = 0.0
        self.run: i64 = 0
        self.skip: i64 = 0
        # Counting: the task steps among the ``run`` callbacks, and every task's stats.
        self.counting = False
        # Steps recorded by Context (see the module doc): tracing, no
        # counting, no shared Context. Kept by ``_update_mode``.
        self.by_context = False
        self.members: list[TaskStats | None] = [None] * GROUP
        # Registered tasks: id(task) -> TaskStats, and id(context) -> the same.
        self.stats = StatsTable()
        self.contexts = ContextTable()
        # id(context) -> live registered tasks sharing it, for contexts shared
        # by more than one (those are not in ``contexts``).
        self.shared: dict[int, int] = {}
        # The type of the callback a C task schedules for its steps, learnt
        # from the first one seen (``_asyncio`` does not export it).
        self.step_type: object = None
        self.on_exit: Callable[[Any, TaskStats], object] | None = None
        self.on_cancel: Callable[[Any], object] | None = None

    # -- the API of recorder clients (see the module doc) ----------------------

    def start_tracing(self, capacity: int, tasks: Iterable[Any]) -> int:
        """Record into the ring, which keeps at least the last ``capacity`` records.

        ``tasks``: the loop's live tasks (a step may be recorded by its
        Context, so every task must be known). Returns the number of the
        next record (see ``window``). Each call needs a ``stop_tracing``.
        """
        register_tasks(self, tasks)
        if capacity > self.capacity:
            codes, objs = self.window(self.total - self.capacity, self.total)
            filled = len(codes)
            pad = capacity - filled
            self.codes = codes + [_CODE_IDLE] * pad
            self.objs = objs + [None] * pad
            self.capacity = capacity
            self.index = filled % capacity
        self.tracers += 1
        self.tracing = True
        _update_mode(self)
        return self.total

    def stop_tracing(self) -> None:
        """One trace is done with the ring; the last one drops it."""
        self.tracers -= 1
        if self.tracers > 0:
            return
        self.tracers = 0
        self.tracing = False
        _update_mode(self)
        self.codes = []
        self.objs = []
        self.capacity = 0
        self.index = 0

    def window(self, first: int, stop: int) -> tuple[list[object], list[object]]:
        """Copies of records ``first`` to ``stop - 1`` still in the ring, oldest first.

        ``total`` is the number of the next record. Another thread may call
        this while the loop records: the copy may then be torn at its ends.
        """
        total = self.total
        first = max(first, total - self.capacity, 0)
        if stop > total:
            stop = total
        if first >= stop:
            return [], []
        cap = self.capacity
        start = (self.index - (total - first)) % cap
        end = (self.index - (total - stop)) % cap
        if start < end:
            return self.codes[start:end], self.objs[start:end]
        return self.codes[start:] + self.codes[:end], self.objs[start:] + self.objs[:end]

    def start_counting(
        self, on_exit: Callable[[Any, TaskStats], object], on_cancel: Callable[[Any], object]
    ) -> None:
        """Count every task's steps and time in them (``stats_of``).

        ``on_exit(task, stats)`` runs when a counted task is done;
        ``on_cancel(task)`` when a cancellation wakes a task. One client
        counts at a time.
        """
        if self.counting:
            raise RuntimeError("the loop's recorder already counts steps for another client")
        self.counting = True
        self.on_exit = on_exit
        self.on_cancel = on_cancel
        _update_mode(self)

    def stop_counting(self) -> None:
        self.counting = False
        self.on_exit = None
        self.on_cancel = None
        self.members = [None] * GROUP
        # The stats stay: they are also the registry of the tasks a trace follows.
        _update_mode(self)

    def stats_of(self, task: object) -> TaskStats | None:
        """The step counts of a live registered ``task`` (None: not registered)."""
        return self.stats.get(id(task))


@mypyc_attr(allow_interpreted_subclasses=True)
class RecorderClient:
    """Base class of the tools that use the recorder rather than hooks.

    ``loop.add_instrument(client)`` gives the loop a recorder (if it has
    none) and calls ``on_attach``; ``loop.remove_instrument(client)`` calls
    ``on_detach``, and the loop drops its recorder after the last client.
    A client asks for what it needs in ``on_attach`` (``start_tracing``,
    ``start_counting``) and ends it in ``on_detach``. Both run on the
    loop's thread, or while the loop is not running.
    """

    def on_attach(self, loop: BaseLoop, recorder: Recorder) -> None:
        """Attached to ``loop``, whose recorder is ``recorder``."""

    def on_detach(self, loop: BaseLoop, recorder: Recorder) -> None:
        """Detached from ``loop``: stop what ``on_attach`` started."""


def _update_mode(rec: Recorder) -> None:
    rec.by_context = rec.tracing and not rec.counting and not rec.shared


def attach(loop: BaseLoop, recorder: Recorder | None, client: RecorderClient) -> Recorder:
    """Add ``client`` to the loop's recorder (made if ``None``); the recorder."""
    rec = recorder if recorder is not None else Recorder()
    if client not in rec.clients:
        rec.clients.append(client)
        client.on_attach(loop, rec)
    return rec


def detach(loop: BaseLoop, rec: Recorder, client: RecorderClient) -> Recorder | None:
    """Remove ``client``; the recorder, or None once it has no client left."""
    rec.clients.remove(client)
    client.on_detach(loop, rec)
    return rec if rec.clients else None


def _put(rec: Recorder, code: object, stamp: object, obj: object) -> None:
    """Write a record that carries an object: ``_put_step``, then its ``objs`` slot."""
    _put_step(rec, code, stamp)
    i = rec.index - 1
    rec.objs[i if i >= 0 else rec.capacity - 1] = obj


def _put_step(rec: Recorder, code: object, stamp: object) -> None:
    """Write a record after its clock reading (if not None), leaving its slot
    in ``objs`` as it was (a step, the hot case).

    Only the kinds that carry an object read ``objs``; what a step leaves
    there is an older record's object, kept until overwritten.
    """
    if rec.woke >= 0:
        _put_wake(rec, stamp)
    if stamp is not None:
        _write(rec, stamp)
    _write(rec, code)


def _write(rec: Recorder, code: object) -> None:
    i = rec.index
    rec.codes[i] = code
    i += 1
    if i == rec.capacity:
        i = 0
    rec.index = i
    rec.total += 1


def begin(rec: Recorder, handle: Handle) -> None:
    """A callback is about to run: record it, as a step of its task if it is one."""
    now: object = None  # no clock reading: timed with its group
    if rec.skip > 0:
        rec.skip -= 1
        rec.run += 1
    else:
        now = _clock()
        _reading(rec, cast(float, now))
        rec.run = 1
    stats: TaskStats | None = None
    kind = type(handle._callback)
    if kind is rec.step_type:
        if rec.by_context:
            _put_step(rec, handle._context, now)
            return
        stats = _filed(rec.contexts, handle._context)
    elif kind is _BUILTIN:  # perhaps a task's wakeup, perhaps another builtin
        stats = _filed(rec.contexts, handle._context)
    if stats is None:
        stats = _begin_other(rec, handle, now)
        if stats is None:
            return
    if rec.tracing:
        _put_step(rec, stats.code, now)
    if rec.counting:
        stats.steps += 1
        rec.members[rec.run - 1] = stats


def _filed(table: ContextTable, context: object) -> TaskStats | None:
    """``table.get(context)``, written out for the per-step path."""
    keys = table.keys
    mask = table.mask
    key: i64 = id(context)
    i = ((key >> 4) ^ (key >> 14)) & mask
    while True:
        k = keys[i]
        if k is context:
            return table.vals[i]
        if k is None:
            return None
        i = (i + 1) & mask


def _reading(rec: Recorder, now: float) -> None:
    """A clock reading ends the callbacks begun since the last one: share out their time."""
    run = rec.run
    if run > 0:
        runs = float(run)
        spent = now - rec.stamp
        if rec.counting:
            share = spent / runs
            members = rec.members
            for i in range(run):
                stats = members[i]
                if stats is not None:
                    members[i] = None
                    stats.seconds += share
                    if share > stats.longest:
                        stats.longest = share
        rec.skip = GROUP - 1 if spent < BURST * runs else 0
    rec.stamp = now


def _boundary(rec: Recorder) -> object:
    """The loop leaves its callbacks (an I/O wait, a stop): a clock reading that ends them."""
    now = _clock()
    _reading(rec, cast(float, now))
    rec.run = 0
    rec.skip = 0  # the next callback starts with a reading of its own
    return now


def _begin_other(rec: Recorder, handle: Handle, now: object) -> TaskStats | None:
    """``begin`` for all but a registered C task's step: the stats of a task step, or None."""
    described = handle._described
    if described is not None:  # a plain callback seen before
        if rec.tracing:
            _put(rec, _CODE_CALLBACK, now, described)
        return None
    callback = handle._callback
    if callback is _task_exited:
        return None  # its exit record is the boundary
    owner = owner_of(callback)
    if not isinstance(owner, _TASK_TYPES) or not _is_step(callback):
        if rec.tracing:
            described = _describe(rec, handle)
            handle._described = described
            _put(rec, _CODE_CALLBACK, now, described)
        return None
    context = handle._context
    internal = not isinstance(callback, _Method)  # a C task's, which passes its context
    if internal and type(callback) is not _BUILTIN:
        rec.step_type = type(callback)
    stats = rec.stats.get(id(owner))
    if stats is None:
        stats = register(rec, owner, context if internal else None)
    elif stats.context is None and internal and context is not None:
        _file_context(rec, stats, context)
    return stats


def _is_step(callback: object) -> bool:
    """Whether a callback bound to a task is one of its steps (not, say, ``task.cancel``)."""
    if isinstance(callback, _Method):  # asyncio's pure-Python Task
        return getattr(callback.__func__, "__name__", "") in ("__step", "__wakeup")
    if type(callback) is _BUILTIN:
        return getattr(callback, "__name__", "") == "task_wakeup"
    return type(callback).__name__ == "TaskStepMethWrapper"


def register(rec: Recorder, task: Any, context: object) -> TaskStats:
    """Start following ``task``: its stats, filed by ``context`` when given; exit noted."""
    stats = TaskStats(id(task))
    rec.stats.put(id(task), stats)
    if context is not None:
        _file_context(rec, stats, context)
    task.add_done_callback(_task_exited, context=_NO_CONTEXT)
    return stats


def _file_context(rec: Recorder, stats: TaskStats, context: object) -> None:
    """File ``stats`` by its task's context, unless another live task shares it."""
    key = id(context)
    stats.context = context
    shared = rec.shared.get(key) if rec.shared else None  # (an id boxed per lookup)
    if shared is not None:
        rec.shared[key] = shared + 1
        return
    if rec.contexts.pop(context) is not None:
        rec.shared[key] = 2  # the task filed there and this one: neither is, now
        _update_mode(rec)
        return
    rec.contexts.put(context, stats)


def _task_exited(task: Any) -> None:
    """The done callback of a registered task: record its end, forget it."""
    rec = task.get_loop()._recorder
    if rec is None:
        return
    key = id(task)
    stats = rec.stats.pop(key)
    if stats is None:
        return  # registered with a recorder since replaced
    context = stats.context
    _unfile_context(rec, stats)
    if rec.tracing:
        if task.cancelled():
            kind = K_CANCELLED
        elif lookup(task, "_exception", None) is not None:
            kind = K_FAILED
        else:
            kind = K_FINISHED
        _put(rec, key * KIND_BITS + kind, _clock(), (task.get_name(), context))
    if rec.counting and rec.on_exit is not None:
        rec.on_exit(task, stats)


def _unfile_context(rec: Recorder, stats: TaskStats) -> None:
    context = stats.context
    if context is None:
        return
    stats.context = None
    key = id(context)
    shared = rec.shared.get(key) if rec.shared else None
    if shared is None:
        rec.contexts.pop(context)
    elif shared > 1:
        rec.shared[key] = shared - 1
    else:
        del rec.shared[key]
        _update_mode(rec)


def stopped(rec: Recorder) -> None:
    """The loop stopped running: the last callback ended now.

    While it runs, a batch of callbacks needs no end of its own: the I/O
    wait or the callback that comes next is the boundary.
    """
    now = _boundary(rec)
    if rec.tracing:
        _put(rec, _CODE_IDLE, now, None)


def spawned(rec: Recorder, task: Any, context: object) -> None:
    """``create_task`` made ``task``; ``context`` is the one it was given, if any."""
    stats = rec.stats.get(id(task))
    if stats is None:
        stats = register(rec, task, task_context(task) if context is None else context)
    if rec.tracing:
        _put(rec, id(task) * KIND_BITS + K_SPAWN, _clock(), stats.context)


def register_tasks(rec: Recorder, tasks: Iterable[Any]) -> None:
    """Register the tasks not yet followed (the live ones, when a trace starts)."""
    for task in tasks:
        if rec.stats.get(id(task)) is None:
            register(rec, task, task_context(task))


def task_context(task: Any) -> object:
    """The ``contextvars.Context`` a task runs its steps in (None if not found)."""
    if _HAS_GET_CONTEXT:
        get_context = lookup(task, "get_context", None)
        if get_context is not None:
            return get_context()
    elif isinstance(task, _PyTask):
        return task._context
    # 3.11's C Task shows its Context only to the garbage collector: the
    # first Context among its referents (its done callbacks' come after).
    # (Not a getattr with a default first: on 3.11 that raises and catches
    # an AttributeError for every task.)
    for ref in gc.get_referents(task):
        if type(ref) is contextvars.Context:
            return ref
    return None


def wait_begin(rec: Recorder, timeout: float) -> None:
    """The loop is about to wait for I/O: the last callback ended now."""
    now = _boundary(rec)
    if rec.tracing:
        _put(rec, _CODE_WAIT, now, timeout)


def wait_end(rec: Recorder, events: int) -> None:
    """The wait returned ``events``: recorded with the next record's clock reading.

    What runs between the two (handing the events out) is too short to be
    worth a clock read of its own.
    """
    if rec.tracing:
        rec.woke = events


def _put_wake(rec: Recorder, stamp: object) -> None:
    events = rec.woke
    rec.woke = -1
    _put(rec, events * KIND_BITS + K_WAKE, stamp, None)


def woken(rec: Recorder, callback: object, args: tuple[Any, ...]) -> None:
    """``call_soon(callback, *args)``: tell ``on_cancel`` when a cancel wakes a task."""
    on_cancel = rec.on_cancel
    if on_cancel is None:
        return
    owner = owner_of(callback)
    if isinstance(owner, _TASK_TYPES):
        fut = args[0]
        if isinstance(fut, _Future) and fut.cancelled():
            on_cancel(owner)


def _describe(rec: Recorder, handle: Handle) -> str:
    callback = handle._callback
    func = lookup(callback, "__func__", callback)
    key = lookup(func, "__code__", func)
    known = rec.descriptions.get(id(key))
    if known is not None and known[0] is key:
        return known[1]
    text = f"<{type(handle).__name__} {describe_callback(callback, None, False)}>"
    if len(rec.descriptions) >= _DESCRIPTIONS_MAX:
        rec.descriptions.clear()
    # Holding ``key`` keeps its id from being reused while it is cached.
    rec.descriptions[id(key)] = (key, text)
    return text
