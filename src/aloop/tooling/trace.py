"""Traces: the loop's recent events as Chrome trace / Perfetto JSON.

One track (``tid``) per task holds its steps, with instant markers for spawn
and exit; track 0, "event loop", holds the other callbacks and every I/O
wait. Only the last ``max_events`` events are kept, so a trace can stay on.
Open the file in https://ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from typing import Any

from aloop._core.taskinfo import task_outcome

__all__ = ["Trace"]

_LOOP_TRACK = 0


class Trace:
    """Instrument recording task steps, callbacks and I/O waits."""

    def __init__(self, max_events: int = 1_000_000) -> None:
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_events)
        self._tracks: dict[int, int] = {}  # id(task) -> track number
        self._names: dict[int, str] = {_LOOP_TRACK: "event loop"}
        self._epoch = time.perf_counter()
        self._step_start = 0.0
        self._callback_start = 0.0
        self._in_task_step = False
        self._wait_start = 0.0
        self._wait_timeout = 0.0

    def _now_us(self) -> float:
        return (time.perf_counter() - self._epoch) * 1e6

    def _track(self, task: asyncio.Task[Any]) -> int:
        track = self._tracks.get(id(task))
        if track is None:
            track = len(self._tracks) + 1
            self._tracks[id(task)] = track
        self._names[track] = task.get_name()
        return track

    def _instant(self, name: str, track: int, **args: Any) -> None:
        self.events.append(
            {
                "name": name,
                "ph": "i",
                "s": "t",
                "ts": self._now_us(),
                "pid": 1,
                "tid": track,
                "args": args,
            }
        )

    def _span(self, name: str, track: int, start: float, **args: Any) -> None:
        end = self._now_us()
        self.events.append(
            {
                "name": name,
                "ph": "X",
                "ts": start,
                "dur": max(end - start, 0.0),
                "pid": 1,
                "tid": track,
                "args": args,
            }
        )

    # -- hooks ---------------------------------------------------------------

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        self._instant("spawned", self._track(task))

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        self._in_task_step = True
        self._step_start = self._now_us()

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        self._in_task_step = False
        self._span("step", self._track(task), self._step_start)

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        self._instant(task_outcome(task), self._track(task))
        self._tracks.pop(id(task), None)  # ids are reused once the task is gone

    def before_callback(self, handle: Any) -> None:
        self._callback_start = self._now_us()

    def after_callback(self, handle: Any) -> None:
        if not self._in_task_step:  # a task step is drawn on the task's own track
            self._span("callback", _LOOP_TRACK, self._callback_start, handle=repr(handle))

    def before_io_wait(self, timeout: float) -> None:
        self._wait_start = self._now_us()
        self._wait_timeout = timeout

    def after_io_wait(self, event_count: int) -> None:
        self._span(
            "I/O wait",
            _LOOP_TRACK,
            self._wait_start,
            timeout=self._wait_timeout,
            events=event_count,
        )

    # -- output ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The trace as a Chrome trace / Perfetto JSON object."""
        metadata = [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": track, "args": {"name": name}}
            for track, name in sorted(self._names.items())
        ]
        metadata.append(
            {
                "name": "process_name",
                "ph": "M",
                "pid": 1,
                "args": {"name": f"aloop pid {os.getpid()}"},
            }
        )
        return {"traceEvents": metadata + list(self.events), "displayTimeUnit": "ms"}

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.to_json(), out)
