"""Tooling for every aloop loop of a process, from the environment.

``aloop.Loop.run_forever`` looks for the variables below when a loop starts
running (a dict lookup each, once per run, nothing per iteration) and calls
``loop_starting``; ``Loop.close`` calls ``loop_closing``. So they work for
any aloop loop: ``aloop.run``'s, ``asyncio.run(loop_factory=...)``'s,
uvicorn's, a gunicorn worker's, pytest's, ``aloop.Loop()``'s.

- ``ALOOP_MONITOR=1``: a ``Monitor`` on the process's socket. One loop at a
  time has it: the first to start running while no other holds it, until it
  closes; the next loop to start then gets it (sequential test loops each
  have it in turn; a loop started while another holds it has none).
- ``ALOOP_TRACE=out.json``: a trace of each loop, saved when it closes (or
  at exit). The first loop of the process writes ``out.json``, the n-th
  ``out.n.json``; ``{pid}`` in the name is replaced by the process id (for
  several worker processes).
- ``ALOOP_OTEL=1``: the loop's statistics as OpenTelemetry metrics, through
  the global meter provider (``aloop.tooling.otel``).

``aloop.run(main(), monitor=..., trace=...)`` passes its arguments through
``configure``; an argument given wins over the variable.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any

__all__ = ["OFF_WORDS", "configure", "is_on", "loop_closing", "loop_starting"]

logger = logging.getLogger("aloop.tooling")

_lock = threading.Lock()
_tools: weakref.WeakKeyDictionary[Any, _LoopTools] = weakref.WeakKeyDictionary()
_traces_started = 0
_atexit_registered = False


#: The values that turn a switch variable off ("" turns ALOOP_MONITOR and ALOOP_OTEL off too).
OFF_WORDS = frozenset({"0", "off", "no", "false"})


def is_on(value: str) -> bool:
    """Whether a switch variable's value turns it on."""
    word = value.strip().lower()
    return word != "" and word not in OFF_WORDS


def _on(name: str) -> bool | None:
    """A switch variable: None unset, else whether it is on."""
    value = os.environ.get(name)
    return None if value is None else is_on(value)


class _LoopTools:
    """What was started for one loop, stopped and saved when it closes."""

    def __init__(self) -> None:
        self.monitor: Any = None
        self.trace: Any = None
        self.trace_path: str | None = None
        self.closed = False
        # A forked child inherits this object but not the threads or the socket.
        self.pid = os.getpid()

    def start(self, loop: Any, monitor: bool, trace: str | None, otel: bool) -> None:
        if trace:
            from aloop.tooling.trace import Trace

            self.trace = Trace()
            self.trace_path = trace
            loop.add_instrument(self.trace)
        if monitor:
            from aloop.tooling.monitor import Monitor

            self.monitor = Monitor(loop).start()
        if otel:
            from aloop.tooling.otel import instrument

            instrument(loop)

    def close(self) -> None:
        if self.closed or self.pid != os.getpid():
            return
        self.closed = True
        if self.monitor is not None:
            self.monitor.stop()
        if self.trace is not None and self.trace_path is not None:
            self.trace.save(self.trace_path)


def _trace_path(template: str) -> str:
    """The process's n-th trace file for ``template`` (see the module doc)."""
    global _traces_started
    _traces_started += 1
    path = template.replace("{pid}", str(os.getpid()))
    if _traces_started > 1:
        stem, ext = os.path.splitext(path)
        path = f"{stem}.{_traces_started}{ext}"
    return path


def _monitor_free() -> bool:
    from aloop.tooling.monitor import _serving, socket_path

    return socket_path(os.getpid()) not in _serving


def configure(loop: Any, *, monitor: bool | None, trace: str | None) -> None:
    """Start ``aloop.run``'s tooling: its arguments, else the variables."""
    with _lock:
        _start(loop, monitor, trace)


def loop_starting(loop: Any) -> None:
    """The variables' tooling for ``loop``, the first time it runs."""
    with _lock:
        if loop in _tools:
            return
        try:
            _start(loop, None, None)
        except Exception:
            # A program must not fail because its observer could not start.
            logger.exception("aloop: could not start the tooling the environment asks for")


def _start(loop: Any, monitor: bool | None, trace: str | None) -> None:
    """Under ``_lock`` (two loops starting at once must not both take the
    monitor socket): the tooling asked for, a None argument meaning "as the
    variable says"."""
    tools = _LoopTools()
    _tools[loop] = tools
    if monitor is None:
        monitor = bool(_on("ALOOP_MONITOR"))
        if monitor and not _monitor_free():
            logger.debug("ALOOP_MONITOR: %r not monitored, another loop has the monitor", loop)
            monitor = False
    if trace is None:
        template = os.environ.get("ALOOP_TRACE")
        trace = _trace_path(template) if template else None
    _at_exit()
    tools.start(loop, monitor, trace, bool(_on("ALOOP_OTEL")))


def loop_closing(loop: Any) -> None:
    """Stop the loop's monitor and save its trace (``Loop.close``)."""
    with _lock:
        tools = _tools.get(loop)
    if tools is not None:
        tools.close()


def _at_exit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_close_all)


def _close_all() -> None:
    """At exit: stop the monitors and save the traces of loops never closed."""
    with _lock:
        pending = list(_tools.values())
    for tools in pending:
        try:
            tools.close()
        except Exception:
            logger.exception("aloop: could not stop the tooling at exit")
