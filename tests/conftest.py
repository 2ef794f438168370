"""Shared fixtures: most tests run the same program on the stdlib loop and on aloop."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.monitored import Program, run_program

import aloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
T = TypeVar("T")

LOOP_FACTORIES: dict[str, LoopFactory] = {
    "asyncio": asyncio.new_event_loop,
    "aloop": aloop.new_event_loop,
}


def pytest_report_header() -> str:
    mode = "compiled (mypyc)" if aloop.COMPILED else "interpreted"
    return f"aloop {aloop.__version__}: {mode}, from {os.path.dirname(aloop.__file__)}"


def pytest_sessionstart(session: pytest.Session) -> None:
    # scripts/test.sh says which mode it meant to test; a silent fallback
    # (a failed mypyc build, a stale install) must not pass as the other mode.
    expected = os.environ.get("ALOOP_EXPECT_COMPILED")
    if expected is not None and aloop.COMPILED != (expected == "1"):
        raise pytest.UsageError(f"expected aloop.COMPILED={expected == '1'}, got {aloop.COMPILED}")


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """Each loop implementation in turn: a test using it is a differential test."""
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def aloop_loop() -> Iterator[aloop.Loop]:
    """A fresh aloop loop, closed afterwards."""
    loop = aloop.new_event_loop()
    try:
        yield loop
    finally:
        if not loop.is_closed():
            loop.close()


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Program]:
    """A real program running with its monitor on (see tests/monitored.py)."""
    yield from run_program(tmp_path)


def run_with_loop(
    loop_factory: LoopFactory, main: Callable[[asyncio.AbstractEventLoop], Awaitable[T]]
) -> T:
    """Run ``main(loop)`` on a fresh loop; shut its executor down and close it."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def run_main(loop_factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh loop and close it."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def both(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on both loops; assert they agree and return the result."""
    expected = run_main(asyncio.new_event_loop, main)
    got = run_main(aloop.new_event_loop, main)
    assert got == expected
    return got


def aloop_env() -> dict[str, str]:
    """Environment for a child Python: the installed aloop if any, else the source tree."""
    env = dict(os.environ)
    if importlib.util.find_spec("aloop") is None:
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def open_fds() -> int:
    """How many fds this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves more fds open than it found."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    after = open_fds()
    assert after <= before, f"fd leak: {before} open before, {after} after"
