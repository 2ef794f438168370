"""The pytest plugin, pytest-asyncio's loop-factory hook and anyio, each in a nested pytest.

The plugin (the top-level module ``aloop_pytest``) is registered by the
package's ``pytest11`` entry point, so the nested runs find it without ``-p``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

pytest_plugins = ["pytester"]

needs_pytest_asyncio = pytest.mark.skipif(
    importlib.util.find_spec("pytest_asyncio") is None,
    reason="pytest-asyncio is not installed (scripts/test.sh installs it)",
)
needs_anyio = pytest.mark.skipif(
    importlib.util.find_spec("anyio") is None,
    reason="anyio is not installed (scripts/test.sh installs it)",
)

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
    result.stdout.fnmatch_lines(["*not an async def test*"])
    assert result.ret != 0


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
    assert isinstance(asyncio.get_running_loop(), aloop.Loop)

@pytest.mark.aloop(virtual_time=True)
async def test_virtual(aloop_clock):
    await asyncio.sleep(3600)
    assert aloop_clock.now == 3600

@pytest.mark.asyncio
async def test_plain_asyncio_test_is_left_alone():
    assert not isinstance(asyncio.get_running_loop(), aloop.Loop)
"""


@needs_pytest_asyncio
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_marker_under_pytest_asyncio(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(MARKED_UNDER_PYTEST_ASYNCIO)
    result = pytester.runpytest("-p", "asyncio")
    result.assert_outcomes(passed=3)


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
