"""Shared fixtures: most tests run the same program on the stdlib loop and on aloop."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitored import Program, run_program
from tests.support import LOOP_FACTORIES, LoopFactory, open_fds

import aloop


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


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves more fds open than it found."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    after = open_fds()
    assert after <= before, f"fd leak: {before} open before, {after} after"
