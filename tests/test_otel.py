"""aloop.tooling.otel: the loop's statistics as OpenTelemetry metrics, read by the SDK."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

# Before aloop.tooling.otel too: it needs the OpenTelemetry API at import.
pytest.importorskip(
    "opentelemetry.sdk", reason="opentelemetry-sdk is a dev dependency (scripts/env.sh)"
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aloop
from aloop.tooling.otel import LoopMetrics, instrument

Points = dict[str, tuple[str, dict[Any, float]]]


def collect(reader: InMemoryMetricReader) -> Points:
    """name -> (unit, {loop id: value}) from one collection."""
    out: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = {
                    dict(p.attributes or {})["aloop.loop.id"]: p.value  # type: ignore[attr-defined]
                    for p in metric.data.data_points
                }
                out[metric.name] = (metric.unit or "", points)
    return out


async def one_readiness_event() -> None:
    """Wait for a socket to become readable: one I/O event for the loop."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    with a, b:
        readable = loop.create_future()
        loop.add_reader(a, readable.set_result, None)
        b.send(b"x")
        await readable
        loop.remove_reader(a)


def test_loop_statistics_as_metrics() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    loop = aloop.new_event_loop()
    idle_loop = aloop.new_event_loop()
    try:
        observed = instrument(loop, meter_provider=provider, lag_interval=0.01)
        other = instrument(idle_loop, meter_provider=provider)
        me, them = observed.attributes["aloop.loop.id"], other.attributes["aloop.loop.id"]

        async def main() -> tuple[Points, Points]:
            gate = asyncio.Event()
            waiters = [asyncio.create_task(gate.wait()) for _ in range(5)]
            await asyncio.sleep(0.02)  # the loop waits in poll: idle time
            assert observed._timer is not None  # the lag probe is armed
            time.sleep(0.05)  # block: the probe's timer fires at least 0.04 s late
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await one_readiness_event()
            during = collect(reader)
            gate.set()
            await asyncio.gather(*waiters)
            return during, collect(reader)

        during, after = loop.run_until_complete(main())
    finally:
        loop.close()
        idle_loop.close()
    units = {name: unit for name, (unit, _) in during.items()}
    assert units == {
        "aloop.loop.lag": "s",
        "aloop.loop.utilisation": "1",
        "aloop.loop.busy_time": "s",
        "aloop.loop.idle_time": "s",
        "aloop.loop.tasks": "{task}",
        "aloop.loop.callbacks": "{callback}",
        "aloop.loop.iterations": "{iteration}",
        "aloop.loop.io_events": "{event}",
    }
    values = {name: points[me] for name, (_, points) in during.items()}
    assert values["aloop.loop.tasks"] == 6  # main and its five waiters
    assert during["aloop.loop.tasks"][1][them] == 0  # each loop has its own points
    assert values["aloop.loop.lag"] >= 0.04
    assert 0 < values["aloop.loop.utilisation"] <= 1
    assert values["aloop.loop.idle_time"] > 0 and values["aloop.loop.busy_time"] >= 0.05
    assert values["aloop.loop.callbacks"] >= 7 and values["aloop.loop.iterations"] >= 3
    assert values["aloop.loop.io_events"] >= 1  # the socketpair's
    assert after["aloop.loop.tasks"][1][me] == 1  # the waiters are done
    assert after["aloop.loop.callbacks"][1][me] > values["aloop.loop.callbacks"]
    # A closed loop is no longer observed.
    closed = collect(reader)
    assert all(me not in points and them not in points for _, points in closed.values())
    assert observed.closed and other.closed


def test_virtual_time_loop_gets_no_lag_probe() -> None:
    reader = InMemoryMetricReader()
    loop = aloop.new_event_loop(virtual_time=True)
    try:
        observed: LoopMetrics = instrument(loop, meter_provider=MeterProvider([reader]))
        loop.run_until_complete(asyncio.sleep(3600))  # jumps: no probe timer keeps it going
        assert observed._timer is None and not loop._scheduled
        assert collect(reader)["aloop.loop.lag"][1][observed.attributes["aloop.loop.id"]] == 0
    finally:
        loop.close()


ENV_PROGRAM = textwrap.dedent(
    """
    import asyncio
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    import aloop

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    async def main():
        await asyncio.gather(*(asyncio.sleep(0.01) for _ in range(3)))
        data = reader.get_metrics_data()
        for scope in data.resource_metrics[0].scope_metrics:
            for metric in scope.metrics:
                if metric.name == "aloop.loop.tasks":
                    print("tasks", [p.value for p in metric.data.data_points])

    # A loop aloop.run did not make: the variable reaches it too.
    with asyncio.Runner(loop_factory=aloop.new_event_loop) as runner:
        runner.run(main())
    """
)


def test_env_variable_instruments_every_loop() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ENV_PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ALOOP_OTEL": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tasks [1]"


def test_without_opentelemetry_the_error_says_what_to_install() -> None:
    code = "import sys; sys.modules['opentelemetry'] = None; import aloop.tooling.otel"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "ImportError: aloop.tooling.otel needs the OpenTelemetry API" in result.stderr
    assert "pip install opentelemetry-api" in result.stderr
