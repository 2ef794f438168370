"""pytest plugin: run ``async def`` tests on aloop, optionally on virtual time.

    @pytest.mark.aloop(virtual_time=True)
    async def test_retry_gives_up_after_an_hour(aloop_clock):
        await retry_for(3600)               # returns at once
        assert aloop_clock.now == 3600

Marker arguments: ``virtual_time`` (default False), ``start`` (0.0),
``autojump`` (True), ``debug`` (False). Requesting the ``aloop_clock``
fixture implies virtual time; the fixture is the test loop's clock.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from aloop._core.clock import VirtualClock
from aloop.runner import new_event_loop

MARKER = "aloop"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aloop(virtual_time=False, start=0.0, autojump=True, debug=False): "
        "run this async test on an aloop event loop",
    )


def _marker_options(item: pytest.Item) -> dict[str, Any] | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    if marker.args:
        raise pytest.UsageError("@pytest.mark.aloop takes keyword arguments only")
    return dict(marker.kwargs)


@pytest.fixture
def aloop_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The virtual clock of this test's aloop loop."""
    options = _marker_options(request.node) or {}
    return VirtualClock(options.get("start", 0.0), autojump=options.get("autojump", True))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    options = _marker_options(pyfuncitem)
    if options is None:
        return None
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        raise pytest.UsageError(
            f"@pytest.mark.aloop marks {pyfuncitem.name}, which is not an async def test"
        )
    unknown = set(options) - {"virtual_time", "start", "autojump", "debug"}
    if unknown:
        raise pytest.UsageError(f"unknown @pytest.mark.aloop arguments: {sorted(unknown)}")
    requested = pyfuncitem.funcargs.get("aloop_clock")
    clock = requested if isinstance(requested, VirtualClock) else None
    if clock is None and options.get("virtual_time", False):
        clock = VirtualClock(options.get("start", 0.0), autojump=options.get("autojump", True))
    loop = new_event_loop(virtual_time=clock if clock is not None else False)
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(debug=options.get("debug", False), loop_factory=lambda: loop) as runner:
        runner.run(func(**kwargs))
    return True
