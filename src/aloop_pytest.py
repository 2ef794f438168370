"""pytest plugin for aloop: run async tests on aloop, on real time or, when asked, virtual time.

One test asks with the marker:

    @pytest.mark.aloop(virtual_time=True)
    async def test_retry_gives_up_after_an_hour(aloop_clock):
        await retry_for(3600)               # returns at once
        assert aloop_clock.now == 3600

Marker arguments: ``virtual_time`` (default: the session's setting, so real
time unless ``--aloop-virtual-time``), ``start`` (0.0), ``autojump`` (True),
``debug`` (False). Requesting the ``aloop_clock`` fixture implies virtual
time; the fixture is the marked test's loop clock.

A whole session asks with ``--aloop`` or the ini key ``aloop = true``
(``--aloop-virtual-time`` / ``aloop_virtual_time = true`` for virtual time):
pytest-asyncio then makes every loop with aloop (through its
``pytest_asyncio_loop_factories`` hook) and anyio's ``asyncio`` backend runs
on aloop (its ``anyio_backend`` value gets aloop's ``loop_factory``).

pytest loads this module in every run of an environment where aloop is
installed (entry point ``pytest11``, name ``aloop``; ``-p aloop`` loads it when
autoload is off), so it lives outside the ``aloop`` package and imports aloop
only when asked: unused, it offers no loop factory, changes no anyio backend
and imports nothing of aloop, so another project's run is unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import asyncio

    from aloop import VirtualClock

MARKER = "aloop"
_OPTIONS = frozenset({"virtual_time", "start", "autojump", "debug"})
_SESSION_PLUGIN = "aloop-session"
_MARKED_PLUGIN = "aloop-marked"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aloop", "aloop event loop")
    group.addoption(
        "--aloop",
        action="store_true",
        default=None,
        help="run every pytest-asyncio and anyio (asyncio backend) test on aloop, in real time",
    )
    group.addoption(
        "--aloop-virtual-time",
        action="store_true",
        default=None,
        help="as --aloop, on virtual time: each loop gets its own virtual clock",
    )
    parser.addini("aloop", "default for --aloop", type="bool", default=False)
    parser.addini(
        "aloop_virtual_time", "default for --aloop-virtual-time", type="bool", default=False
    )


def _session_virtual_time(config: pytest.Config) -> bool:
    return bool(config.getoption("aloop_virtual_time") or config.getini("aloop_virtual_time"))


def _session_asked(config: pytest.Config) -> bool:
    asked = config.getoption("aloop") or config.getini("aloop")
    return bool(asked) or _session_virtual_time(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aloop(virtual_time=False, start=0.0, autojump=True, debug=False): "
        "run this async test on an aloop event loop (virtual_time defaults to "
        "True under --aloop-virtual-time)",
    )
    # Registered now, after every entry-point plugin: among the tryfirst
    # pytest_pyfunc_call implementations, the last registered runs first, so a
    # marked test is ours also under anyio's auto mode.
    config.pluginmanager.register(MarkedTests(), _MARKED_PLUGIN)
    if _session_asked(config):
        config.pluginmanager.register(
            SessionLoops(virtual_time=_session_virtual_time(config)), _SESSION_PLUGIN
        )


def _session_factory(virtual_time: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    from aloop.testing import loop_factory

    return loop_factory(virtual_time=virtual_time)


def _with_aloop(backend: object, factory: Callable[[], asyncio.AbstractEventLoop]) -> object:
    """An ``anyio_backend`` value that picks plain asyncio, now with aloop's factory."""
    if backend == "asyncio":
        return ("asyncio", {"loop_factory": factory})
    if isinstance(backend, tuple) and len(backend) == 2 and backend[0] == "asyncio":
        options = backend[1]
        # A loop the user chose (their own factory, uvloop) stays theirs.
        if isinstance(options, dict) and not {"loop_factory", "use_uvloop"} & options.keys():
            return ("asyncio", {**options, "loop_factory": factory})
    return backend


class SessionLoops:
    """Registered only when the session asks for aloop: its hooks exist only then.

    pytest-asyncio calls ``pytest_asyncio_loop_factories`` whenever any plugin
    implements it, and refuses a ``None`` answer, so an idle implementation
    would already change every run.
    """

    def __init__(self, *, virtual_time: bool) -> None:
        self.virtual_time = virtual_time

    # trylast: a conftest's own pytest_asyncio_loop_factories answers first.
    @pytest.hookimpl(trylast=True, optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"aloop": _session_factory(self.virtual_time)}

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        value = yield
        if fixturedef.argname != "anyio_backend":
            return value
        backend = _with_aloop(value, _session_factory(self.virtual_time))
        cached = fixturedef.cached_result
        if backend is not value and cached is not None and cached[2] is None:
            # Later requests in the fixture's scope read the cache, not this hook.
            fixturedef.cached_result = (backend, cached[1], None)
        return backend


def _marker_options(item: pytest.Item) -> dict[str, Any] | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    if marker.args:
        pytest.fail(
            f"{item.nodeid}: @pytest.mark.aloop takes keyword arguments only "
            f"({', '.join(sorted(_OPTIONS))}), got {marker.args!r}",
            pytrace=False,
        )
    unknown = set(marker.kwargs) - _OPTIONS
    if unknown:
        pytest.fail(
            f"{item.nodeid}: unknown @pytest.mark.aloop arguments {sorted(unknown)}; "
            f"accepted: {', '.join(sorted(_OPTIONS))}",
            pytrace=False,
        )
    options = dict(marker.kwargs)
    options.setdefault("virtual_time", _session_virtual_time(item.config))
    return options


def _new_clock(options: dict[str, Any]) -> VirtualClock:
    from aloop import VirtualClock

    return VirtualClock(options.get("start", 0.0), autojump=options.get("autojump", True))


@pytest.fixture
def aloop_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The virtual clock of this ``@pytest.mark.aloop`` test's loop."""
    node = request.node
    options = _marker_options(node)
    if options is None:
        pytest.fail(
            f"{node.nodeid}: aloop_clock is the clock of a @pytest.mark.aloop "
            "test's loop; mark the test, or read asyncio.get_running_loop().virtual_clock "
            "in a test run with --aloop-virtual-time",
            pytrace=False,
        )
    marker = node.get_closest_marker(MARKER)
    if marker is not None and marker.kwargs.get("virtual_time", True) is False:
        pytest.fail(
            f"{node.nodeid}: aloop_clock means virtual time, "
            "but the test is marked @pytest.mark.aloop(virtual_time=False)",
            pytrace=False,
        )
    return _new_clock(options)


def _test_coroutine_function(item: pytest.Function) -> Any:
    """The test's ``async def``, also when pytest-asyncio has wrapped it to run it itself.

    In auto mode pytest-asyncio takes every ``async def`` test and replaces the
    function by a synchronous wrapper (``functools.wraps``) around it.
    """
    func = item.obj
    if not inspect.iscoroutinefunction(func):
        func = inspect.unwrap(func)
    if not inspect.iscoroutinefunction(func):
        pytest.fail(
            f"{item.nodeid}: @pytest.mark.aloop runs async def tests on an aloop loop, "
            f"but {item.name} is a plain function; make it async def or remove the marker",
            pytrace=False,
        )
    return func


def _run_marked(item: pytest.Function, options: dict[str, Any]) -> None:
    """Run the marked test's coroutine on a fresh aloop loop, as ``asyncio.run`` would."""
    func = _test_coroutine_function(item)
    import asyncio

    import aloop

    requested = item.funcargs.get("aloop_clock")
    clock = requested if isinstance(requested, aloop.VirtualClock) else None
    if clock is None and options["virtual_time"]:
        clock = _new_clock(options)
    loop = aloop.new_event_loop(virtual_time=clock if clock is not None else False)
    kwargs = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
    with asyncio.Runner(debug=options.get("debug", False), loop_factory=lambda: loop) as runner:
        runner.run(func(**kwargs))


class MarkedTests:
    """Runs the tests marked ``aloop``; any other test is left to whoever runs it."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        options = _marker_options(pyfuncitem)
        if options is None:
            return None
        _run_marked(pyfuncitem, options)
        return True
