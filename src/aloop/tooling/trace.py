"""Traces: the loop's recent events as Chrome trace / Perfetto JSON.

One track (``tid``) per task holds its steps, with instant markers for spawn
and exit; track 0, "event loop", holds the other callbacks and every I/O
wait. Only the last ``max_events`` records are kept, so a trace can stay on
(clock readings are records too: about one per 16 events in a burst of short
callbacks, one per event when each is timed alone).
Open the file in https://ui.perfetto.dev or chrome://tracing.

Recording is done by the loop's compiled recorder (``aloop._core.recorder``):
a ring of compact records, no Python call per event. A callback gets a clock
reading of its own unless it is one of a burst of short ones, which are
timed in groups: their slices split the group's time evenly and say so in
``args["timing"]``. The JSON is built only when asked (``to_json``,
``save``). Several traces on one loop share the ring; each sees the records
made while it was attached.

While nothing else uses the recorder, a task's step is recorded as the
``contextvars.Context`` it ran in; reading the trace tells which task that
was (``_resolve``). A task made by ``asyncio.Task(...)`` itself rather than
``create_task``, and gone before the trace is read, is not known by name:
its steps get a track of their own named by the Context's id.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, cast

from aloop._core import recorder as _rec

__all__ = ["Trace"]

_LOOP_TRACK = 0
_OUTCOMES = {_rec.K_FINISHED: "finished", _rec.K_FAILED: "failed", _rec.K_CANCELLED: "cancelled"}


class _Window:
    """A copy of the records a trace saw, taken on the loop's thread when it can be."""

    def __init__(self, loop: Any, rec: _rec.Recorder, first: int) -> None:
        self.codes, self.stamps, self.objs = _records(*rec.window(first, rec.total))
        self.end = time.perf_counter()
        tasks: list[asyncio.Task[Any]] = []
        for _ in range(10):  # another thread's view of the task set may change under it
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                continue
        self.live = {id(task): task.get_name() for task in tasks}
        holders: dict[int, list[int]] = {}
        for task in tasks:
            holders.setdefault(id(_rec.task_context(task)), []).append(id(task))
        _resolve(self.codes, self.objs, holders)


class Trace(_rec.RecorderClient):
    """Records task steps, callbacks and I/O waits while attached to a loop.

    ``loop.add_instrument(trace)`` starts it, ``loop.remove_instrument(trace)``
    stops it; ``aloop.run(main(), trace="out.json")`` records a whole run.
    """

    def __init__(self, max_events: int = 1_000_000) -> None:
        self.max_events = max_events
        self._loop: Any = None
        self._recorder: _rec.Recorder | None = None
        self._first = 0
        self._epoch = time.perf_counter()
        self._window: _Window | None = None

    # -- as the recorder's client (loop thread) ---------------------------------

    def on_attach(self, loop: Any, recorder: _rec.Recorder) -> None:
        self._loop = loop
        self._recorder = recorder
        self._window = None
        self._epoch = time.perf_counter()
        self._first = recorder.start_tracing(self.max_events, asyncio.all_tasks(loop))

    def on_detach(self, loop: Any, recorder: _rec.Recorder) -> None:
        self._window = _Window(loop, recorder, self._first)
        self._recorder = None
        recorder.stop_tracing()

    # -- output ----------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """The recorded events as Chrome trace events (no metadata), oldest first."""
        return self._convert()[1]

    def to_json(self) -> dict[str, Any]:
        """The trace as a Chrome trace / Perfetto JSON object."""
        names, events = self._convert()
        metadata: list[dict[str, Any]] = [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": track, "args": {"name": name}}
            for track, name in sorted(names.items())
        ]
        metadata.append(
            {
                "name": "process_name",
                "ph": "M",
                "pid": 1,
                "args": {"name": f"aloop pid {os.getpid()}"},
            }
        )
        return {"traceEvents": metadata + events, "displayTimeUnit": "ms"}

    def save(self, path: str) -> None:
        """Write the trace as Chrome/Perfetto JSON (``to_json()``) to ``path``."""
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.to_json(), out)

    def _convert(self) -> tuple[dict[int, str], list[dict[str, Any]]]:
        window = self._window
        if window is None and self._recorder is not None:
            # Still recording: read the ring as it is now.
            window = _Window(self._loop, self._recorder, self._first)
        names: dict[int, str] = {_LOOP_TRACK: "event loop"}
        if window is None:
            return names, []
        return names, _events(window, self._epoch, names)


def _records(
    codes: list[object], objs: list[object]
) -> tuple[list[object], list[object], list[object]]:
    """The ring's records without its clock readings: codes, the reading that
    times each record (None: none, timed with its group), objects."""
    records: list[object] = []
    stamps: list[object] = []
    carried: list[object] = []
    reading: object = None
    for code, obj in zip(codes, objs, strict=True):
        if type(code) is float:
            reading = code
            continue
        records.append(code)
        stamps.append(reading)
        carried.append(obj)
        reading = None
    return records, stamps, carried


def _resolve(codes: list[object], objs: list[object], holders: dict[int, list[int]]) -> None:
    """Make the records plain, in place: a step recorded as a Context becomes
    its task's step; an exit record's object becomes the task's name, a
    spawn record's None.

    Walks back from the newest record. ``holders`` maps ``id(context)`` to
    the tasks running in it: at first the live ones, then, going back, a
    task's exit record adds it and its spawn record removes it (a Context
    may pass from a finished task to a new one). The copy then holds no
    Context, so a kept trace keeps none alive.
    """
    unplaced: dict[int, list[int]] = {}  # id(context) -> its steps no record has placed yet
    for i in range(len(codes) - 1, -1, -1):
        code = codes[i]
        if type(code) is not int:  # a step, as its task's Context
            objs[i] = None
            keys = holders.get(id(code))
            if keys:
                codes[i] = _step(keys[-1])
            else:
                unplaced.setdefault(id(code), []).append(i)
            continue
        number = code
        kind = number & (_rec.KIND_BITS - 1)
        if kind == _rec.K_STEP:
            objs[i] = None  # a step leaves an older record's object in its slot
        if kind != _rec.K_SPAWN and kind not in _OUTCOMES:
            continue
        if kind == _rec.K_SPAWN:
            context, objs[i] = objs[i], None  # named at its exit, or as it is now
        else:
            objs[i], context = cast(tuple[str, object], objs[i])
        if context is None:
            continue
        key = number >> 4
        keys = holders.setdefault(id(context), [])
        if kind == _rec.K_SPAWN:
            if key in keys:
                keys.remove(key)
            for j in unplaced.pop(id(context), ()):  # the newest task spawned with it
                codes[j] = _step(key)
        else:
            keys.append(key)
    for context_id, indices in unplaced.items():  # see the module doc
        for j in indices:
            codes[j] = _step(context_id)


def _step(key: int) -> int:
    return key * _rec.KIND_BITS + _rec.K_STEP


def _times(stamps: list[object], end: float) -> list[float]:
    """Every record's time: a record timed with its group (no reading, ``None``)
    gets an even share of the time between the readings around it."""
    times: list[float] = []
    last: float | None = None
    pending = 0  # records since ``last`` without a reading
    for stamp in [*stamps, end]:
        if stamp is None:
            pending += 1
            continue
        now = float(stamp)  # type: ignore[arg-type]  # a float when not None
        if pending:
            start = last if last is not None else now  # the window began mid-group
            step = (now - start) / (pending + 1)
            times.extend(start + step * (n + 1) for n in range(pending))
            pending = 0
        times.append(now)
        last = now
    times.pop()  # ``end``
    return times


def _events(window: _Window, epoch: float, names: dict[int, str]) -> list[dict[str, Any]]:
    """Chrome trace events from the records; fills ``names`` (track -> name)."""
    events: list[dict[str, Any]] = []
    tracks: dict[int, int] = {}  # id(task) -> track; ids are reused once a task is gone
    live = window.live

    def track_of(key: int, name: str | None = None) -> int:
        track = tracks.get(key)
        if track is None:
            track = len(names)
            tracks[key] = track
            names[track] = name or live.get(key) or f"task {key:#x}"
        elif name is not None:
            names[track] = name
        return track

    def us(stamp: float) -> float:
        return (stamp - epoch) * 1e6

    # The span in progress: (name, track, start, args), ended by the next boundary.
    span: tuple[str, int, float, dict[str, Any]] | None = None
    estimated = False  # the span in progress starts without a clock reading
    # track -> when its last step ended: a task's exit is recorded by its done
    # callback, a little later, but it happened there.
    step_ended: dict[int, float] = {}

    def close(stamp: float, exact_end: bool) -> None:
        if span is not None:
            name, track, start, args = span
            if name == "step":
                step_ended[track] = stamp
            if estimated or not exact_end:
                args["timing"] = "estimated: timed with a group of short callbacks"
            events.append(
                {
                    "name": name,
                    "ph": "X",
                    "ts": us(start),
                    "dur": max(stamp - start, 0.0) * 1e6,
                    "pid": 1,
                    "tid": track,
                    "args": args,
                }
            )

    def instant(name: str, track: int, stamp: float) -> None:
        events.append(
            {"name": name, "ph": "i", "s": "t", "ts": us(stamp), "pid": 1, "tid": track, "args": {}}
        )

    times = _times(window.stamps, window.end)
    for code, record_stamp, obj, stamp in zip(
        window.codes, window.stamps, window.objs, times, strict=True
    ):
        exact = record_stamp is not None
        number = cast(int, code)  # every step resolved to its task
        kind = number & (_rec.KIND_BITS - 1)
        key = number >> 4
        if kind == _rec.K_SPAWN:
            tracks.pop(key, None)
            instant("spawned", track_of(key), stamp)
            continue
        if kind == _rec.K_WAKE:
            if span is not None and span[0] == "I/O wait":
                span[3]["events"] = key
            close(stamp, exact)
            span = None
            continue
        close(stamp, exact)
        span = None
        estimated = not exact
        if kind == _rec.K_STEP:
            span = ("step", track_of(key), stamp, {})
        elif kind == _rec.K_CALLBACK:
            span = ("callback", _LOOP_TRACK, stamp, {"handle": str(obj)})
        elif kind == _rec.K_WAIT:
            span = ("I/O wait", _LOOP_TRACK, stamp, {"timeout": obj})
        elif kind in _OUTCOMES:
            track = track_of(key, str(obj))
            instant(_OUTCOMES[kind], track, step_ended.get(track, stamp))
            tracks.pop(key, None)
    close(window.end, True)
    for key, track in tracks.items():  # tasks alive at the end: their names now
        if key in live:
            names[track] = live[key]
    return events
