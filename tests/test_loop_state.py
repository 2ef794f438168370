"""Tooling keeps its state off the loop: attaching every tool leaves ``loop.__dict__`` as it was.

A compiled loop holds all its state in attributes declared on ``BaseLoop``
(a native class without an instance ``__dict__``). An attribute set on it
anywhere else makes CPython create the instance ``__dict__`` of the
interpreted ``Loop``, which every method call made from C (a Task's
``loop.call_soon``) then searches before the class. Interpreted, every
attribute lives in ``__dict__``: there the set of names must not grow.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aloop
import aloop.inspect
from aloop._core.scheduler import BaseLoop
from aloop.tooling import auto
from aloop.tooling.monitor import Monitor
from aloop.tooling.stats import LoopStats
from aloop.tooling.trace import Trace
from aloop.tooling.watchdog import Watchdog


class _EveryHook(aloop.Instrument):
    """An instrument with every hook, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def _count(self, arg: object) -> None:
        self.calls += 1

    task_spawned = task_scheduled = before_task_step = after_task_step = _count
    task_exited = before_callback = after_callback = before_io_wait = after_io_wait = _count


def _ask(path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One request to a monitor's socket, as ``python -m aloop`` makes it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(json.dumps(payload).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    return answer


class _Tools:
    """Every tool aloop has, attached to one loop; ``detach()`` takes them off."""

    def __init__(self, loop: aloop.Loop, tmp_path: Path) -> None:
        self._undo: list[Callable[[], object]] = []
        loop.set_debug(True)
        hooks = _EveryHook()
        self._attach(loop, hooks)
        aloop.inspect.track(loop, detail=True)
        self._undo.append(lambda: aloop.inspect.untrack(loop))
        for _ in range(2):  # two traces share the recorder's ring
            self._attach(loop, Trace())
        # aloop.run's trace= (and ALOOP_TRACE): a trace saved when the loop closes.
        auto.configure(loop, monitor=False, trace=str(tmp_path / "auto.json"))
        self.monitor = Monitor(loop, path=str(tmp_path / "m.sock"), detail=True).start()
        self._undo.append(self.monitor.stop)
        self._undo.append(Watchdog(loop, 0.5, log=False).start().stop)
        self._undo.append(LoopStats(loop).close)
        self.collect = self._otel(loop)

    def _attach(self, loop: aloop.Loop, instrument: object) -> None:
        loop.add_instrument(instrument)
        self._undo.append(lambda: loop.remove_instrument(instrument))

    def _otel(self, loop: aloop.Loop) -> Callable[[], object]:
        """OpenTelemetry metrics of ``loop``; a function that collects them once."""
        sdk = pytest.importorskip(
            "opentelemetry.sdk.metrics", reason="the OpenTelemetry SDK is not installed"
        )
        export = pytest.importorskip("opentelemetry.sdk.metrics.export")
        from aloop.tooling.otel import instrument

        reader = export.InMemoryMetricReader()
        provider = sdk.MeterProvider(metric_readers=[reader])
        self._undo.append(instrument(loop, meter_provider=provider, lag_interval=0.01).close)
        collect: Callable[[], object] = reader.get_metrics_data
        return collect

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()


async def _work(loop: aloop.Loop, tools: _Tools) -> set[str]:
    """Tasks, timers, a cancellation, an executor job and the monitor's requests,
    with every tool on; the names in ``loop.__dict__`` meanwhile."""

    async def child(n: int) -> int:
        await asyncio.sleep(0.001 * n)
        return n

    path = tools.monitor.path
    sleeper = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
    assert await asyncio.gather(*(child(n) for n in range(5))) == list(range(5))
    ps = await loop.run_in_executor(None, _ask, path, {"cmd": "ps"})
    assert "sleeper" in [row["name"] for row in ps["tasks"]]
    traced = await loop.run_in_executor(None, _ask, path, {"cmd": "trace", "seconds": 0.05})
    assert "traceEvents" in traced
    await loop.run_in_executor(None, tools.collect)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert "sleeper" in [row.name for row in aloop.inspect.snapshot(loop, include_done=True)]
    return set(vars(loop))


@pytest.mark.parametrize("virtual_time", [False, True], ids=["real-time", "virtual-time"])
def test_every_tool_leaves_the_loop_dict_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, virtual_time: bool
) -> None:
    for name in ("ALOOP_MONITOR", "ALOOP_TRACE", "ALOOP_OTEL"):
        monkeypatch.delenv(name, raising=False)
    loop = aloop.new_event_loop(virtual_time=virtual_time)
    names = set(vars(loop))
    if aloop.COMPILED:
        assert names == set()
    try:
        tools = _Tools(loop, tmp_path)
        assert set(vars(loop)) == names
        assert loop.run_until_complete(_work(loop, tools)) == names
        tools.detach()
        # Only the auto tooling's trace is left: it records until the loop closes.
        assert loop._instruments is None and loop._recorder is not None
        assert [type(client) for client in loop._recorder.clients] == [Trace]
        loop.run_until_complete(loop.shutdown_default_executor())
        assert set(vars(loop)) == names
    finally:
        loop.close()
    assert (tmp_path / "auto.json").exists()  # the auto tooling's trace, saved at close


@pytest.mark.skipif(not aloop.COMPILED, reason="interpreted, BaseLoop is a plain class")
def test_the_compiled_base_loop_has_no_instance_dict() -> None:
    # All of the loop's state is declared on it: nothing can add to it.
    loop = BaseLoop()
    try:
        with pytest.raises(TypeError):
            vars(loop)
        with pytest.raises(AttributeError):
            loop.undeclared = 1  # type: ignore[attr-defined]
    finally:
        loop._close_core()
