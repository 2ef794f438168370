"""An aloop loop's statistics as OpenTelemetry metrics (needs ``opentelemetry-api``).

    from aloop.tooling.otel import instrument
    instrument(loop)                          # the global meter provider
    instrument(loop, meter_provider=provider)

or ``ALOOP_OTEL=1`` in the environment: every aloop loop of the process, on
the global meter provider (set it up first, e.g. with
``opentelemetry-instrument`` or the SDK's ``metrics.set_meter_provider``).

Instruments of meter ``aloop``; each observation has the attribute
``aloop.loop.id`` (1, 2, ... in the order loops were instrumented):

| name | kind | unit | what |
|---|---|---|---|
| ``aloop.loop.lag`` | gauge | s | the longest a probe timer fired late since the last collection |
| ``aloop.loop.utilisation`` | gauge | 1 | share of time running callbacks since then |
| ``aloop.loop.busy_time`` | counter | s | time running callbacks (not waiting in poll) |
| ``aloop.loop.idle_time`` | counter | s | time waiting for I/O or timers |
| ``aloop.loop.tasks`` | up-down counter | {task} | tasks alive |
| ``aloop.loop.callbacks`` | counter | {callback} | callbacks (and task steps) run |
| ``aloop.loop.iterations`` | counter | {iteration} | loop iterations |
| ``aloop.loop.io_events`` | counter | {event} | I/O readiness events |

The values are read from the counters the scheduler keeps anyway (see
``aloop.tooling.stats``) when the metric reader collects, from its thread.
The lag is measured by one timer on the loop every ``lag_interval`` seconds
(not on a virtual-time loop, where lag means nothing). A closed loop's
observations stop.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "aloop.tooling.otel needs the OpenTelemetry API: pip install opentelemetry-api "
        "(and opentelemetry-sdk, or another SDK, to export the metrics)"
    ) from exc

from aloop.tooling.stats import LoopStats, busy_fraction, tasks_alive

if TYPE_CHECKING:
    from aloop.loop import Loop

__all__ = ["LoopMetrics", "instrument"]

_ids = itertools.count(1)
_lock = threading.Lock()
# id(meter provider) -> (the provider, its instruments and the loops they observe)
_registries: dict[int, tuple[Any, _Registry]] = {}


class LoopMetrics:
    """One instrumented loop: what its observations are read from."""

    def __init__(self, loop: Loop, lag_interval: float) -> None:
        self._loop = weakref.ref(loop)
        self.attributes = {"aloop.loop.id": next(_ids)}
        self.stats = LoopStats(loop)
        self.closed = False
        self._lag = 0.0  # the longest lateness since the last collection
        self._last = (0.0, 0.0)  # busy, idle at the last collection
        self._interval = lag_interval
        self._timer: Any = None
        if loop.virtual_clock is None and lag_interval > 0:
            loop.call_soon_threadsafe(self._probe, None)

    def close(self) -> None:
        """Stop observing the loop (its instruments then report nothing for it)."""
        if self.closed:
            return
        self.closed = True
        self.stats.close()
        loop = self._loop()
        timer = self._timer
        if timer is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(timer.cancel)

    def alive(self) -> Any:
        """The loop, or None once it is gone or closed (and then close this)."""
        loop = self._loop()
        if loop is None or loop.is_closed() or self.closed:
            self.close()
            return None
        return loop

    def _probe(self, when: float | None) -> None:
        """On the loop thread: note how late this timer fired, set the next one."""
        loop = self._loop()
        if loop is None or self.closed:
            return
        now = loop.time()
        if when is not None:
            self._lag = max(self._lag, now - when)
        due = now + self._interval
        self._timer = loop.call_at(due, self._probe, due)

    def take_lag(self) -> float:
        """The largest loop lag (seconds) seen since the last call; resets it."""
        lag, self._lag = self._lag, 0.0
        return max(lag, 0.0)

    def take_utilisation(self) -> float:
        """The busy share (0..1) since the last call."""
        snap = self.stats.snapshot()
        busy, idle = snap.busy - self._last[0], snap.idle - self._last[1]
        self._last = (snap.busy, snap.idle)
        return busy_fraction(busy, idle)


class _Registry:
    """The instruments of one meter provider, observing every loop given to it."""

    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter("aloop")
        self.loops: list[LoopMetrics] = []
        gauge, counter, updown = (
            meter.create_observable_gauge,
            meter.create_observable_counter,
            meter.create_observable_up_down_counter,
        )
        gauge(
            "aloop.loop.lag",
            [self._each(lambda m, loop: m.take_lag())],
            unit="s",
            description="Longest time a loop timer fired late since the last collection",
        )
        gauge(
            "aloop.loop.utilisation",
            [self._each(lambda m, loop: m.take_utilisation())],
            unit="1",
            description="Share of time the loop ran callbacks since the last collection",
        )
        counter(
            "aloop.loop.busy_time",
            [self._each(lambda m, loop: m.stats.snapshot().busy)],
            unit="s",
            description="Time the loop ran callbacks rather than waited",
        )
        counter(
            "aloop.loop.idle_time",
            [self._each(lambda m, loop: m.stats.snapshot().idle)],
            unit="s",
            description="Time the loop waited for I/O or timers",
        )
        updown(
            "aloop.loop.tasks",
            [self._each(lambda m, loop: tasks_alive(loop))],
            unit="{task}",
            description="Tasks alive on the loop",
        )
        for name, attr, unit, text in (
            ("callbacks", "_handles_run", "{callback}", "Callbacks and task steps run"),
            ("iterations", "_iterations", "{iteration}", "Loop iterations"),
            ("io_events", "_io_events", "{event}", "I/O readiness events handled"),
        ):
            counter(
                f"aloop.loop.{name}",
                [self._each(_counter_reader(attr))],
                unit=unit,
                description=text,
            )

    def _each(
        self, read: Callable[[LoopMetrics, Any], float]
    ) -> Callable[[Any], Iterable[metrics.Observation]]:
        def callback(options: Any) -> Iterator[metrics.Observation]:
            with _lock:
                self.loops = [m for m in self.loops if not m.closed]
                current = list(self.loops)
            for m in current:
                loop = m.alive()
                if loop is not None:
                    yield metrics.Observation(read(m, loop), m.attributes)

        return callback


def _counter_reader(attr: str) -> Callable[[LoopMetrics, Any], float]:
    """Reads one of the scheduler's counters (an int the loop bumps)."""

    def read(m: LoopMetrics, loop: Any) -> float:
        return int(getattr(loop, attr))

    return read


def instrument(loop: Loop, meter_provider: Any = None, *, lag_interval: float = 0.5) -> LoopMetrics:
    """Export ``loop``'s statistics through ``meter_provider`` (default: the global one).

    Returns the ``LoopMetrics``; its ``close()`` stops observing the loop
    (closing the loop does too).
    """
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        entry = _registries.get(id(provider))
        if entry is None or entry[0] is not provider:
            entry = (provider, _Registry(provider))
            _registries[id(provider)] = entry
        observed = LoopMetrics(loop, lag_interval)
        entry[1].loops.append(observed)
    return observed
