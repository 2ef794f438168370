"""The pytest plugin, pytest-asyncio's loop-factory hook and anyio, each in a nested pytest.

The plugin (the top-level module ``aloop_pytest``) is registered by the
package's ``pytest11`` entry point, so the nested runs find it without ``-p``.
"""

from __future__ import annotations

import os
import re

import pytest
from tests.support import requires

pytest_plugins = ["pytester"]

needs_pytest_asyncio = requires("pytest_asyncio")
needs_anyio = requires("anyio")

# A day of simulated retries: seconds of real time on a real clock.
RETRY_DAY = """
import asyncio

async def retry_for_a_day():
    loop = asyncio.get_running_loop()
    start = loop.time()
    attempts = 0
    while loop.time() - start < 86400:
        attempts += 1
        await asyncio.sleep(600)
    return attempts
"""


def test_marker_runs_async_test_on_aloop_with_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        RETRY_DAY
        + """
import aloop
import pytest

@pytest.mark.aloop(virtual_time=True)
async def test_day(aloop_clock):
    assert isinstance(asyncio.get_running_loop(), aloop.Loop)
    assert await retry_for_a_day() == 144
    assert aloop_clock.now == 86400

@pytest.mark.aloop(virtual_time=True, start=100.0)
async def test_start():
    assert asyncio.get_running_loop().time() == 100.0

@pytest.mark.aloop
async def test_real_time_by_default():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, aloop.Loop) and loop.virtual_clock is None

@pytest.mark.aloop(virtual_time=True)
async def test_timeout_fires():
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(10), 5)

@pytest.mark.aloop(virtual_time=True)
async def test_failure_is_reported():
    await asyncio.sleep(1)
    assert False, "expected failure"
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*expected failure*"])


def test_marker_on_a_sync_test_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.aloop
def test_sync():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.aloop runs async def tests*test_sync is a plain function*"]
    )
    assert "Traceback" not in result.stdout.str()


@needs_pytest_asyncio
def test_pytest_asyncio_loop_factories_hook(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        """
from aloop.testing import loop_factories

def pytest_asyncio_loop_factories(config, item):
    return loop_factories(virtual_time=True)
"""
    )
    pytester.makepyfile(
        RETRY_DAY
        + """
import aloop
import pytest

@pytest.mark.asyncio
async def test_day():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, aloop.Loop) and loop.virtual_clock is not None
    assert await retry_for_a_day() == 144
"""
    )
    result = pytester.runpytest("-p", "asyncio")
    result.assert_outcomes(passed=1)


@needs_anyio
def test_anyio_loop_factory_backend_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        RETRY_DAY
        + """
import aloop
import pytest
from aloop.testing import loop_factory

@pytest.fixture
def anyio_backend():
    return ("asyncio", {"loop_factory": loop_factory(virtual_time=True)})

@pytest.mark.anyio
async def test_day():
    assert isinstance(asyncio.get_running_loop(), aloop.Loop)
    assert await retry_for_a_day() == 144
"""
    )
    result = pytester.runpytest("-p", "anyio", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)


UNRELATED_SUITE = """
import sys

def test_aloop_stays_out_of_other_projects():
    assert "aloop" not in sys.modules
    assert "aloop_pytest" in sys.modules  # loaded by its entry point, and idle
"""


def test_unused_plugin_imports_nothing_of_aloop(pytester: pytest.Pytester) -> None:
    """Another project's suite in an environment where aloop is installed."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(UNRELATED_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(passed=1)


def test_aloop_imported_before_pytest_starts_gives_no_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sitecustomize that installs aloop, then a suite with warnings as errors."""
    site = pytester.mkdir("site")
    (site / "sitecustomize.py").write_text("import aloop\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        """
import sys

def test_runs():
    assert "aloop" in sys.modules
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(passed=1)
    assert "PytestAssertRewriteWarning" not in result.stdout.str() + result.stderr.str()


MARKED_UNDER_PYTEST_ASYNCIO = """
import asyncio
import aloop
import pytest

@pytest.mark.aloop
async def test_on_aloop():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, aloop.Loop) and loop.virtual_clock is None

@pytest.mark.aloop(virtual_time=True)
async def test_virtual(aloop_clock):
    await asyncio.sleep(3600)
    assert aloop_clock.now == 3600

@pytest.mark.aloop(virtual_time=True, start=5.0)
async def test_virtual_without_the_clock_fixture():
    await asyncio.sleep(3600)
    assert asyncio.get_running_loop().time() == 3605

@pytest.mark.asyncio
async def test_plain_asyncio_test_is_left_alone():
    assert not isinstance(asyncio.get_running_loop(), aloop.Loop)

@pytest.mark.aloop
def test_sync():
    pass
"""


@needs_pytest_asyncio
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_marker_under_pytest_asyncio(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(MARKED_UNDER_PYTEST_ASYNCIO)
    result = pytester.runpytest("-p", "asyncio")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.aloop runs async def tests*test_sync*"])


def test_clock_fixture_without_the_marker_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_clock(aloop_clock):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*aloop_clock is the clock of a @pytest.mark.aloop test*"])


@needs_anyio
def test_marker_wins_over_anyio_auto_mode(pytester: pytest.Pytester) -> None:
    """anyio's auto mode takes every async def test; a marked one is still aloop's."""
    pytester.makeini("[pytest]\nanyio_mode = auto\n")
    pytester.makepyfile(
        """
import asyncio
import aloop
import pytest

@pytest.mark.aloop
async def test_marked():
    assert isinstance(asyncio.get_running_loop(), aloop.Loop)

async def test_unmarked():
    assert not isinstance(asyncio.get_running_loop(), aloop.Loop)
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(passed=2)


def test_clock_fixture_with_real_time_marker_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.aloop(virtual_time=False)
async def test_clock(aloop_clock):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*aloop_clock means virtual time*virtual_time=False*"])


# A project that knows nothing of aloop: each test prints the type of its loop.
OTHER_PROJECT = """
import asyncio
import sys

import pytest
import pytest_asyncio

def report(where):
    loop = asyncio.get_running_loop()
    print(f"@@LOOP:{where}={type(loop).__module__}.{type(loop).__name__}")
    print(f"@@ALOOP_IMPORTED:{where}={'aloop' in sys.modules}")
    return loop

@pytest_asyncio.fixture
async def fixture_loop():
    return report("fixture")

@pytest.mark.asyncio
async def test_pytest_asyncio(fixture_loop, request):
    assert report("pytest_asyncio") is fixture_loop
    hook = request.config.pluginmanager.hook.pytest_asyncio_loop_factories
    print(f"@@FACTORY_HOOKS={[impl.plugin_name for impl in hook.get_hookimpls()]}")

@pytest.mark.anyio
async def test_anyio(anyio_backend):
    if anyio_backend != "trio":
        report("anyio")
    print(f"@@ANYIO_BACKEND={anyio_backend!r}")

class TestOwnFactory:
    @pytest.fixture
    def anyio_backend(self):
        return ("asyncio", {"loop_factory": asyncio.new_event_loop})

    @pytest.mark.anyio
    async def test_anyio_own_factory(self):
        report("anyio_own")

def test_plugin_loaded_and_idle(request):
    print(f"@@PLUGIN_LOADED={request.config.pluginmanager.has_plugin('aloop')}")
"""


def project_run(
    pytester: pytest.Pytester, ini: str, *args: str, subprocess: bool = True
) -> dict[str, str]:
    """Run OTHER_PROJECT in a fresh pytest; its reports: {"LOOP:anyio": "aloop.loop.Loop"}."""
    pytester.makeini("[pytest]\nfilterwarnings = error\n" + ini)
    pytester.makepyfile(OTHER_PROJECT)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = run("-s", *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    return dict(re.findall(r"@@([\w:]+)=(.*)", result.stdout.str()))


STDLIB_LOOP = "asyncio.unix_events._UnixSelectorEventLoop"
ALOOP_LOOP = "aloop.loop.Loop"
MODE_INI = "asyncio_mode = {}\nasyncio_default_fixture_loop_scope = function\n"


@needs_pytest_asyncio
@needs_anyio
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_unused_plugin_changes_nothing_under_pytest_asyncio_and_anyio(
    pytester: pytest.Pytester, mode: str
) -> None:
    """Installed but not asked for: no loop factory, anyio's backend untouched, no aloop."""
    reports = project_run(pytester, MODE_INI.format(mode))
    assert reports["PLUGIN_LOADED"] == "True"
    assert reports["FACTORY_HOOKS"] == "[]"
    assert reports["ANYIO_BACKEND"] == "'asyncio'"
    for where in ("fixture", "pytest_asyncio", "anyio", "anyio_own"):
        assert reports[f"LOOP:{where}"] == STDLIB_LOOP
        assert reports[f"ALOOP_IMPORTED:{where}"] == "False"


@needs_pytest_asyncio
@needs_anyio
@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("ask", ["option", "ini"])
def test_session_asked_runs_pytest_asyncio_and_anyio_on_aloop(
    pytester: pytest.Pytester, mode: str, ask: str
) -> None:
    ini = MODE_INI.format(mode) + ("aloop = true\n" if ask == "ini" else "")
    args = ["--aloop"] if ask == "option" else []
    reports = project_run(pytester, ini, *args, subprocess=False)
    assert reports["FACTORY_HOOKS"] == "['aloop-session']"
    assert reports["ANYIO_BACKEND"].startswith(
        "('asyncio', {'loop_factory': <function new_event_loop"
    )
    for where in ("fixture", "pytest_asyncio", "anyio"):
        assert reports[f"LOOP:{where}"] == ALOOP_LOOP
    if mode == "strict":
        # A loop the project picked itself stays its own. (In auto mode
        # pytest-asyncio runs every async def test, anyio's too, on its loop.)
        assert reports["LOOP:anyio_own"] == STDLIB_LOOP


@needs_pytest_asyncio
@needs_anyio
def test_p_aloop_loads_the_plugin_with_autoload_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    ini = MODE_INI.format("strict")
    plugins = ["-p", "asyncio", "-p", "anyio"]
    assert project_run(pytester, ini, *plugins)["PLUGIN_LOADED"] == "False"
    reports = project_run(pytester, ini, *plugins, "-p", "aloop", "--aloop")
    assert reports["PLUGIN_LOADED"] == "True"
    for where in ("fixture", "pytest_asyncio", "anyio"):
        assert reports[f"LOOP:{where}"] == ALOOP_LOOP


VIRTUAL_PROJECT = (
    RETRY_DAY
    + """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.asyncio
async def test_pytest_asyncio_day():
    assert await retry_for_a_day() == 144

@pytest.mark.anyio
async def test_anyio_day():
    assert await retry_for_a_day() == 144

@pytest.mark.aloop
async def test_marked_follows_the_session(aloop_clock):
    assert await retry_for_a_day() == 144
    assert aloop_clock.now == 86400

@pytest.mark.aloop(virtual_time=False)
async def test_marked_real_time_stays_real():
    assert asyncio.get_running_loop().virtual_clock is None
"""
)


@needs_pytest_asyncio
@needs_anyio
@pytest.mark.parametrize(("mode", "ask"), [("strict", "option"), ("auto", "ini")])
def test_session_virtual_time_only_when_asked(
    pytester: pytest.Pytester, mode: str, ask: str
) -> None:
    """A day of retries takes no time, in every kind of test, when the session asks for it."""
    ini = MODE_INI.format(mode) + ("aloop_virtual_time = true\n" if ask == "ini" else "")
    pytester.makeini("[pytest]\nfilterwarnings = error\n" + ini)
    pytester.makepyfile(VIRTUAL_PROJECT)
    args = ["--aloop-virtual-time"] if ask == "option" else []
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=4)


def test_session_option_without_pytest_asyncio_or_anyio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import asyncio
import aloop
import pytest

@pytest.mark.aloop
async def test_marked():
    assert isinstance(asyncio.get_running_loop(), aloop.Loop)
"""
    )
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:anyio", "--aloop")
    result.assert_outcomes(passed=1)


def test_factories_use_real_time_unless_asked() -> None:
    from aloop.testing import loop_factories, loop_factory

    real = loop_factory()()
    [factory] = loop_factories().values()
    also_real = factory()
    virtual = loop_factory(virtual_time=True)()
    try:
        assert real.virtual_clock is None and also_real.virtual_clock is None
        assert virtual.virtual_clock is not None
    finally:
        for loop in (real, also_real, virtual):
            loop.close()
