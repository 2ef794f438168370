"""pytest plugin for aloop: run ``async def`` tests on aloop, optionally on virtual time.

    @pytest.mark.aloop(virtual_time=True)
    async def test_retry_gives_up_after_an_hour(aloop_clock):
        await retry_for(3600)               # returns at once
        assert aloop_clock.now == 3600

Marker arguments: ``virtual_time`` (default False), ``start`` (0.0),
``autojump`` (True), ``debug`` (False). Requesting the ``aloop_clock``
fixture implies virtual time; the fixture is the test loop's clock.

pytest loads this module in every run of an environment where aloop is
installed (entry point ``pytest11``, name ``aloop``), so it lives outside the
``aloop`` package and imports aloop only when a test asks for it: an unused
plugin changes nothing in another project's run. Under pytest-asyncio, in
strict and auto mode alike, a test marked ``aloop`` runs on aloop.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aloop import VirtualClock

MARKER = "aloop"
_OPTIONS = frozenset({"virtual_time", "start", "autojump", "debug"})


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
    unknown = set(marker.kwargs) - _OPTIONS
    if unknown:
        raise pytest.UsageError(f"unknown @pytest.mark.aloop arguments: {sorted(unknown)}")
    return dict(marker.kwargs)


def _new_clock(options: dict[str, Any]) -> VirtualClock:
    from aloop import VirtualClock

    return VirtualClock(options.get("start", 0.0), autojump=options.get("autojump", True))


@pytest.fixture
def aloop_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The virtual clock of this test's aloop loop."""
    return _new_clock(_marker_options(request.node) or {})


def _test_coroutine_function(item: pytest.Function) -> Any:
    """The test's ``async def``, also when pytest-asyncio has wrapped it to run it itself.

    In auto mode pytest-asyncio takes every ``async def`` test and replaces the
    function by a synchronous wrapper (``functools.wraps``) around it.
    """
    func = item.obj
    if not inspect.iscoroutinefunction(func):
        func = inspect.unwrap(func)
    if not inspect.iscoroutinefunction(func):
        raise pytest.UsageError(
            f"@pytest.mark.aloop marks {item.name}, which is not an async def test"
        )
    return func


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    options = _marker_options(pyfuncitem)
    if options is None:
        return None
    func = _test_coroutine_function(pyfuncitem)
    import asyncio

    import aloop

    requested = pyfuncitem.funcargs.get("aloop_clock")
    clock = requested if isinstance(requested, aloop.VirtualClock) else None
    if clock is None and options.get("virtual_time", False):
        clock = _new_clock(options)
    loop = aloop.new_event_loop(virtual_time=clock if clock is not None else False)
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(debug=options.get("debug", False), loop_factory=lambda: loop) as runner:
        runner.run(func(**kwargs))
    return True
