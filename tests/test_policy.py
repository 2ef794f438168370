"""The policy names and deprecations: aloop is ready for asyncio without policies.

asyncio deprecates its policy system in 3.14 and removes it in 3.16. Importing
and using aloop must raise no DeprecationWarning on any version; the policy
names exist only where asyncio still has policies, and warn where asyncio's do.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
from tests.support import aloop_env

import aloop

HAS_POLICY_DEPRECATION = sys.version_info >= (3, 14)


def run_strict(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where every warning is an error."""
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=aloop_env(),
        timeout=120,
    )


def test_import_and_use_raise_no_warning() -> None:
    """The documented ways in, plus the APIs that check callbacks, under -W error."""
    got = run_strict(
        """
        import asyncio, signal, sys
        import aloop

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: None)
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
            loop.remove_signal_handler(signal.SIGUSR1)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            await proc.wait()
            await asyncio.sleep(0)
            return "ok"

        print(aloop.run(main()))
        with asyncio.Runner(loop_factory=aloop.new_event_loop) as runner:
            print(runner.run(main()))
        if sys.version_info >= (3, 12):
            print(asyncio.run(main(), loop_factory=aloop.new_event_loop))
        """
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["ok"] * (3 if sys.version_info >= (3, 12) else 2)


def test_coroutine_callbacks_refused_without_deprecated_checks() -> None:
    """Debug mode refuses coroutine functions (asyncio's own check is deprecated in 3.14)."""
    got = run_strict(
        """
        import asyncio
        import aloop

        async def coro_fn():
            pass

        loop = aloop.new_event_loop()
        loop.set_debug(True)
        for call in (lambda: loop.call_soon(coro_fn), lambda: loop.add_signal_handler(10, coro_fn)):
            try:
                call()
            except TypeError as exc:
                print(exc)
        loop.close()
        """
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [
        "coroutines cannot be used with call_soon()",
        "coroutines cannot be used with add_signal_handler()",
    ]


def test_event_loop_policy_warns_where_asyncio_policies_do() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy_cls = aloop.EventLoopPolicy
    if HAS_POLICY_DEPRECATION:
        [warning] = caught
        assert warning.category is DeprecationWarning
        assert "'aloop.EventLoopPolicy' is deprecated" in str(warning.message)
        assert warning.filename == __file__  # the user's line, not aloop's
    else:
        assert caught == []
    assert policy_cls.__name__ == policy_cls.__qualname__ == "EventLoopPolicy"
    loop = policy_cls().new_event_loop()
    assert isinstance(loop, aloop.Loop)
    loop.close()
    assert "EventLoopPolicy" in dir(aloop) and "install" in dir(aloop)
    assert "EventLoopPolicy" not in aloop.__all__  # a star import must not warn


def test_install_makes_asyncio_use_aloop() -> None:
    code = """
    import asyncio, warnings
    import aloop

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aloop.install()
    print([(w.category.__name__, w.filename) for w in caught])

    async def main():
        return type(asyncio.get_running_loop()).__name__

    print(asyncio.run(main()))
    loop = asyncio.new_event_loop()
    print(type(loop).__name__)
    loop.close()
    """
    got = run_strict(code)
    assert got.returncode == 0, got.stderr
    warned = "[('DeprecationWarning', '<string>')]" if HAS_POLICY_DEPRECATION else "[]"
    assert got.stdout.splitlines() == [warned, "Loop", "Loop"]


@pytest.mark.skipif(not HAS_POLICY_DEPRECATION, reason="asyncio has policies before 3.14")
def test_without_asyncio_policies_the_names_are_gone() -> None:
    """As on 3.16: without asyncio's default policy, aloop's names say what to use instead."""
    got = run_strict(
        """
        import asyncio.unix_events
        asyncio.events._get_event_loop_policy()  # asyncio's own, made while it can be
        del asyncio.unix_events._DefaultEventLoopPolicy  # what 3.16 no longer has
        import aloop

        for name in ("EventLoopPolicy", "install"):
            try:
                getattr(aloop, name)
            except AttributeError as exc:
                print(exc)
        print(aloop.run(asyncio.sleep(0, "run works")))
        """
    )
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[-1] == "run works"
    for name, line in zip(("EventLoopPolicy", "install"), lines, strict=False):
        assert line.startswith(f"module 'aloop' has no attribute '{name}'")
        assert "loop_factory=aloop.new_event_loop" in line


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'aloop' has no attribute 'nope'"):
        aloop.nope  # type: ignore[attr-defined]  # noqa: B018
