"""What the tests share: running a program on a fresh loop, on both loops, and what they need.

Most tests are differential: the same program runs on the stdlib loop and on
aloop, either through the ``loop_factory`` fixture (tests/conftest.py), one
run per test id, or through ``both``, which compares the two results in one
test. The external servers some tests talk to are in tests/services.py, the
programs the tooling observes in tests/monitored.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import aloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

LOOP_FACTORIES: dict[str, LoopFactory] = {
    "asyncio": asyncio.new_event_loop,
    "aloop": aloop.new_event_loop,
}

# -- running a program on a fresh loop -------------------------------------------------


def in_new_loop(factory: LoopFactory, body: Callable[[asyncio.AbstractEventLoop], T]) -> T:
    """``body(loop)`` on a fresh loop, closed afterwards."""
    loop = factory()
    try:
        return body(loop)
    finally:
        loop.close()


def run_with_loop(
    factory: LoopFactory, main: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, T]]
) -> T:
    """Run ``main(loop)`` on a fresh loop; shut its default executor down and close it."""

    def body(loop: asyncio.AbstractEventLoop) -> T:
        try:
            return loop.run_until_complete(main(loop))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())

    return in_new_loop(factory, body)


def run_on(factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh loop; shut its default executor down and close it."""
    return run_with_loop(factory, lambda _loop: main())


def both(main: Any, run: Callable[[LoopFactory, Any], T] = run_on) -> T:
    """``run(factory, main)`` on the stdlib loop, then on aloop: assert equal, return aloop's."""
    expected = run(asyncio.new_event_loop, main)
    got = run(aloop.new_event_loop, main)
    assert got == expected
    return got


def run_guarded(
    factory: LoopFactory,
    main: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, T]],
    timeout: float = 30.0,
) -> T:
    """Run ``main(loop)`` on a fresh loop; a hang fails the test instead of stalling it.

    A thread cancels the program after ``timeout`` seconds (a bound on a
    hang, not a timing check): a loop stuck in its poll is woken by
    ``call_soon_threadsafe`` as a user's would be.
    """
    loop = factory()
    expired = threading.Event()
    try:
        task = loop.create_task(main(loop))

        def expire() -> None:
            expired.set()
            loop.call_soon_threadsafe(task.cancel)

        watchdog = threading.Timer(timeout, expire)
        watchdog.start()
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if expired.is_set():
                raise AssertionError(f"hung: not done after {timeout:.0f} s") from None
            raise
        finally:
            watchdog.cancel()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def aloop_bug(reason: str) -> Callable[[F], F]:
    """Run on both loops, the aloop run expected to fail (strict) because of ``reason``.

    Like the ``loop_factory`` fixture, with the same ids; once aloop is fixed
    the aloop run passes, strict xfail turns that into a failure, and the mark
    comes off.
    """
    mark = pytest.mark.xfail(strict=True, reason=f"aloop bug: {reason}")
    return pytest.mark.parametrize(
        "loop_factory",
        [
            pytest.param(aloop.new_event_loop, id="aloop", marks=mark),
            pytest.param(asyncio.new_event_loop, id="asyncio"),
        ],
    )


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes whose order matters: a lost, doubled or swapped piece shows."""
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A stream server's handler: send back what it reads until EOF, then close."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


# -- comparing what happened ------------------------------------------------------------


def mask_addresses(text: str) -> str:
    """``0x7f...`` addresses differ from run to run and loop to loop: one placeholder."""
    return re.sub(r"0x[0-9a-f]+", "0xADDR", text)


def outcome(call: Callable[[], Any]) -> tuple[type[BaseException] | None, str]:
    """What ``call()`` did: (exception type, message) or (None, repr(result)), addresses masked."""
    try:
        result = call()
    except BaseException as exc:
        return type(exc), mask_addresses(str(exc))
    return None, mask_addresses(repr(result))


# -- what a test needs ------------------------------------------------------------------


def importable(name: str) -> bool:
    """Whether ``import name`` would find the module (a missing parent package: no)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def requires(*modules: str, hint: str = "a dev dependency: scripts/env.sh") -> pytest.MarkDecorator:
    """Skip unless every module is importable; the reason names the missing ones."""
    missing = [name for name in modules if not importable(name)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} ({hint})")


# CPython's test package holds the certificates the TLS tests use; Debian and
# Ubuntu ship it apart from the interpreter (libpython3.X-testsuite).
requires_test_certs = requires(
    "test.test_asyncio", hint="CPython's test package, for its test certificates"
)


def server_context() -> ssl.SSLContext:
    """A TLS server context with CPython's test certificate."""
    from test.test_asyncio import utils

    return utils.simple_server_sslcontext()  # type: ignore[no-any-return]


def client_context(*, verify: bool = False) -> ssl.SSLContext:
    """A TLS client context for ``server_context``: not verifying unless ``verify``."""
    from test.test_asyncio import utils

    return utils.simple_client_sslcontext(disable_verify=not verify)  # type: ignore[no-any-return]


def aloop_env() -> dict[str, str]:
    """Environment for a child Python: this one's, so it imports the same aloop.

    That is the installed aloop, or the source tree where PYTHONPATH names it
    (and ALOOP_PURE=1 passes on with it).
    """
    return dict(os.environ)


def open_fds() -> int:
    """How many fds this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))
