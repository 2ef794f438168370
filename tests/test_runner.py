"""``aloop.run`` and the loop's run/close entry points behave exactly as asyncio's.

``aloop.run`` is compared with ``asyncio.run``; the loop's refusals of bad
input are checked on both loops (``loop_factory``) with asyncio's exact
exception types and messages. Ctrl-C is a real SIGINT sent to a child process.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import pytest
from tests.support import LOOP_FACTORIES, LoopFactory, outcome

import aloop

SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(aloop.__file__)))

Runner = Callable[[Coroutine[Any, Any, Any]], Any]

RUNS: dict[str, Runner] = {"asyncio.run": asyncio.run, "aloop.run": aloop.run}

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(params=sorted(RUNS))
def run(request: pytest.FixtureRequest) -> Runner:
    """asyncio.run, then aloop.run: a test using it is a differential test."""
    return RUNS[request.param]


# -- aloop.run: results, errors, cleanup ------------------------------------------------


def test_result_is_returned_and_loop_is_aloop(run: Runner) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main(x: int) -> tuple[int, str]:
        await asyncio.sleep(0)
        loops.append(asyncio.get_running_loop())
        return x * 2, asyncio.current_task().get_name()  # type: ignore[union-attr]

    assert run(main(21))[0] == 42
    (loop,) = loops
    assert loop.is_closed()
    assert not loop.is_running()
    assert isinstance(loop, aloop.Loop) == (run is aloop.run)
    # Nothing is left running in this thread.
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_exception_propagates_unchanged(run: Runner) -> None:
    raised: list[BaseException] = []

    async def main() -> None:
        await asyncio.sleep(0)
        exc = LookupError("from main")
        raised.append(exc)
        raise exc

    with pytest.raises(LookupError) as info:
        run(main())
    assert info.value is raised[0]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate_and_loop_is_closed(
    run: Runner, exc_type: type[BaseException]
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        raise exc_type

    with pytest.raises(exc_type):
        run(main())
    assert loops[0].is_closed()


def test_cancelled_main_raises_cancelled_error(run: Runner) -> None:
    async def main() -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        run(main())


def test_leftover_tasks_are_cancelled_and_their_errors_reported(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []

    async def quiet() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("quiet cancelled")
            raise

    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("failing cancelled")
            raise ValueError("failed while cancelled") from None

    async def finished() -> str:
        return "done early"

    tasks: list[asyncio.Task[Any]] = []

    async def main() -> str:
        tasks.extend(asyncio.create_task(coro) for coro in (quiet(), failing(), finished()))
        await asyncio.sleep(0.001)
        return "main done"

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert run(main()) == "main done"
    assert sorted(log) == ["failing cancelled", "quiet cancelled"]
    quiet_task, failing_task, finished_task = tasks
    assert quiet_task.cancelled()
    assert isinstance(failing_task.exception(), ValueError)
    assert finished_task.result() == "done early"
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert [r.getMessage().splitlines()[0] for r in records] == [
        "unhandled exception during asyncio.run() shutdown"
    ]
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is failing_task.exception()
    assert f"task: {failing_task!r}" in records[0].getMessage()


def test_leftover_errors_reach_the_custom_exception_handler(run: Runner) -> None:
    contexts: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []

    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise KeyError("in finally")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: contexts.append(ctx))
        tasks.append(asyncio.create_task(failing()))
        await asyncio.sleep(0)

    run(main())
    assert [(c["message"], type(c["exception"]), sorted(c)) for c in contexts] == [
        (
            "unhandled exception during asyncio.run() shutdown",
            KeyError,
            ["exception", "message", "task"],
        )
    ]


def test_async_generators_are_shut_down(run: Runner) -> None:
    log: list[str] = []
    keep: list[AsyncGenerator[int, None]] = []

    async def gen() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            log.append("generator closed on the loop")

    async def main() -> None:
        g = gen()
        keep.append(g)  # still referenced: only shutdown_asyncgens can close it
        await g.__anext__()
        log.append("main done")

    run(main())
    assert log == ["main done", "generator closed on the loop"]


def test_default_executor_is_shut_down_and_waited_for(run: Runner) -> None:
    log: list[str] = []
    executors: list[Any] = []
    started = threading.Event()
    release = threading.Event()

    def slow() -> None:
        started.set()
        release.wait(60)
        log.append("executor call finished")

    async def releaser() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            # Cancelled by run's cleanup, which shuts the executor down next.
            log.append("released")
            release.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, slow)  # never awaited
        executors.append(loop._default_executor)  # type: ignore[attr-defined]
        executors.append(asyncio.create_task(releaser()))
        await asyncio.to_thread(started.wait, 60)
        log.append("main done")

    run(main())
    log.append("run returned")
    assert log == ["main done", "released", "executor call finished", "run returned"]
    assert all(not t.is_alive() for t in executors[0]._threads)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executors[0].submit(print)


@pytest.mark.parametrize("debug", [None, False, True])
def test_debug_flag(debug: bool | None) -> None:
    async def main() -> tuple[bool, int]:
        return asyncio.get_running_loop().get_debug(), sys.get_coroutine_origin_tracking_depth()

    depth = sys.get_coroutine_origin_tracking_depth()
    expected = asyncio.run(main(), debug=debug)
    if debug:
        # Debug mode, and coroutine origin tracking while the loop runs.
        assert expected == (True, 10)
    elif debug is False:
        assert expected == (False, depth)
    assert aloop.run(main(), debug=debug) == expected
    assert sys.get_coroutine_origin_tracking_depth() == depth


def test_debug_true_reports_slow_callbacks(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.001
        time.sleep(0.05)  # blocks the loop: debug mode says so

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        if run is aloop.run:
            aloop.run(main(), debug=True)
        else:
            asyncio.run(main(), debug=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(m.startswith("Executing <Task ") and " took " in m for m in messages), messages


def test_run_inside_a_running_loop_is_refused(loop_factory: LoopFactory) -> None:
    async def child() -> None:
        pass

    async def main() -> list[tuple[type[BaseException] | None, str]]:
        results = []
        for r in (asyncio.run, aloop.run):
            coro = child()
            results.append(outcome(lambda coro=coro, r=r: r(coro)))  # type: ignore[misc]
            coro.close()
        return results

    loop = loop_factory()
    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    assert (
        results == [(RuntimeError, "asyncio.run() cannot be called from a running event loop")] * 2
    )


def not_a_coroutine_cases() -> list[Any]:
    async def coro_fn() -> None:
        pass

    def gen() -> Any:
        yield

    return [
        pytest.param(lambda: 42, id="int"),
        pytest.param(lambda: None, id="none"),
        pytest.param(lambda: coro_fn, id="coroutine-function"),
        # asyncio accepts a plain generator as a coroutine before 3.12.
        pytest.param(lambda: gen(), id="generator"),
        pytest.param(lambda: print, id="callable"),
    ]


@pytest.mark.parametrize("make_arg", not_a_coroutine_cases())
def test_non_coroutine_argument_gets_asyncios_exception(make_arg: Callable[[], Any]) -> None:
    expected = outcome(lambda: asyncio.run(make_arg()))
    got = outcome(lambda: aloop.run(make_arg()))
    assert got == expected
    if sys.version_info >= (3, 14):
        # 3.14 also runs any awaitable, and refuses the rest with a TypeError.
        assert expected == (TypeError, "An asyncio.Future, a coroutine or an awaitable is required")
    elif not isinstance(make_arg(), types.GeneratorType) or sys.version_info >= (3, 12):
        assert expected[0] is ValueError
        assert expected[1].startswith("a coroutine was expected, got ")


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio.run() takes awaitables from 3.14")
def test_run_takes_any_awaitable_as_asyncio_run_does() -> None:
    class Later:
        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert aloop.run(Later()) == asyncio.run(Later()) == "awaited"


# -- other ways in: Runner, loop_factory, the policy ---------------------------------------


def test_asyncio_runner_with_aloop_factory() -> None:
    async def step(n: int) -> tuple[int, str, bool]:
        loop = asyncio.get_running_loop()
        return n, var.get(), isinstance(loop, aloop.Loop)

    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    with asyncio.Runner(loop_factory=aloop.new_event_loop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, aloop.Loop)
        assert runner.run(step(1)) == (1, "unset", True)
        assert runner.run(step(2), context=ctx) == (2, "in ctx", True)
        assert runner.get_loop() is loop
        assert not loop.is_closed()
    assert loop.is_closed()


def test_asyncio_runner_context_is_shared_between_runs() -> None:
    async def set_var() -> None:
        var.set("set by first run")

    async def get_var() -> str:
        return var.get()

    results = {}
    for name, factory in (("asyncio", asyncio.new_event_loop), ("aloop", aloop.new_event_loop)):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(set_var())
            results[name] = runner.run(get_var())
    assert results == {"asyncio": "set by first run", "aloop": "set by first run"}


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.run() has no loop_factory before 3.12"
)
def test_asyncio_run_with_loop_factory() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert asyncio.run(main(), loop_factory=aloop.new_event_loop) == "aloop.loop"  # type: ignore[call-arg]


def test_event_loop_policy_makes_asyncio_run_use_aloop() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(aloop.EventLoopPolicy())
    try:
        assert asyncio.run(main()) == "aloop.loop"
        loop = asyncio.new_event_loop()
        assert isinstance(loop, aloop.Loop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(old)
    assert asyncio.run(main()) == "asyncio.unix_events"


# -- in a fresh process: the current event loop, Ctrl-C -------------------------------------

CHILD_PRELUDE = """\
import asyncio
import sys

def run(main):
    if sys.argv[1] == "aloop":
        import aloop

        return aloop.run(main)
    return asyncio.run(main)

"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def run_child(body: str, runner: str) -> subprocess.CompletedProcess[str]:
    code = CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, runner],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )


def test_run_sets_the_current_event_loop_as_asyncio_run_does() -> None:
    """asyncio.run(main) makes its loop the policy's current loop, and unsets it after.

    Synchronous code inside main that asks the policy for the loop gets the running
    one; after run returns there is no current loop (RuntimeError), and no stray
    loop gets created.
    """
    body = """\
    import warnings
    warnings.simplefilter("always")

    async def main():
        loop = asyncio.get_running_loop()
        current = asyncio.get_event_loop_policy().get_event_loop()
        print("policy's loop is the running loop:", current is loop)

    run(main())
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError as exc:
        print("after run:", exc)
    else:
        print("after run: got a loop", type(loop).__name__)
    """
    expected = run_child(body, "asyncio")
    assert expected.returncode == 0, expected.stderr
    assert expected.stdout.splitlines() == [
        "policy's loop is the running loop: True",
        "after run: There is no current event loop in thread 'MainThread'.",
    ]
    got = run_child(body, "aloop")
    assert (got.stdout, got.stderr, got.returncode) == (
        expected.stdout,
        expected.stderr,
        expected.returncode,
    )


SIGINT_CHILD = """\
import os
import re
import signal

# A child of a shell without job control starts with SIGINT ignored, and then
# neither runner reacts to it; a terminal's Ctrl-C reaches the default handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

mode = sys.argv[2]
wait = sys.argv[3]

async def main():
    try:
        print("ready", flush=True)
        if wait == "sleep":
            await asyncio.sleep(3600)  # the loop polls with a timeout
        else:
            await asyncio.get_running_loop().create_future()  # the loop polls without one
    except asyncio.CancelledError:
        print("main cancelled", flush=True)
        if mode == "swallow":
            return "swallowed"
        if mode == "slow-cleanup":
            print("cleanup started", flush=True)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                print("cleanup cancelled", flush=True)
                raise
        raise
    finally:
        print("main finally", flush=True)

try:
    print("run returned", run(main()), flush=True)
except BaseException as exc:
    print("run raised", type(exc).__name__, flush=True)
    raise
"""


def interrupt_child(
    runner: str, mode: str, wait: str, waits_for: list[str]
) -> tuple[str, str, int]:
    """Start the child, send SIGINT after each line of ``waits_for``; (stdout, last stderr, rc)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + SIGINT_CHILD, runner, mode, wait],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for wanted in waits_for:
            while True:
                line = proc.stdout.readline()
                assert line, f"child ended before printing {wanted!r}: {seen}"
                seen.append(line.rstrip("\n"))
                if line.rstrip("\n") == wanted:
                    break
            # Let the child get back into its poll: a signal that lands between the last
            # bytecode and the poll syscall waits for the poll to end (on both loops).
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stdout = "\n".join([*seen, *out.splitlines()])
    err_lines = err.strip().splitlines()
    return stdout, err_lines[-1] if err_lines else "", proc.returncode


@pytest.mark.parametrize(
    ("mode", "waits_for", "expected_stdout", "expected_rc"),
    [
        pytest.param(
            "reraise",
            ["ready"],
            ["ready", "main cancelled", "main finally", "run raised KeyboardInterrupt"],
            -signal.SIGINT,
            id="ctrl-c",
        ),
        pytest.param(
            "swallow",
            ["ready"],
            ["ready", "main cancelled", "main finally", "run returned swallowed"],
            0,
            id="ctrl-c-swallowed-by-main",
        ),
        pytest.param(
            "slow-cleanup",
            ["ready", "cleanup started"],
            [
                "ready",
                "main cancelled",
                "cleanup started",
                "cleanup cancelled",
                "main finally",
                "run raised KeyboardInterrupt",
            ],
            -signal.SIGINT,
            id="second-ctrl-c-during-cleanup",
        ),
    ],
)
@pytest.mark.parametrize("wait", ["sleep", "future"])
def test_ctrl_c(
    mode: str, waits_for: list[str], expected_stdout: list[str], expected_rc: int, wait: str
) -> None:
    """A real SIGINT while main awaits: main is cancelled, run raises KeyboardInterrupt."""
    results = {
        runner: interrupt_child(runner, mode, wait, waits_for) for runner in ("asyncio", "aloop")
    }
    stdout, last_err, rc = results["asyncio"]
    assert stdout.splitlines() == expected_stdout
    assert rc == expected_rc
    if expected_rc:
        assert last_err == "KeyboardInterrupt"
    assert results["aloop"] == results["asyncio"]


# -- bad input to the loop ------------------------------------------------------------------


async def nothing() -> None:
    pass


def test_run_until_complete_on_closed_loop(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    coro = nothing()
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(coro)
    coro.close()
    assert (type(info.value), str(info.value)) == (RuntimeError, "Event loop is closed")
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.run_forever()


def test_running_a_loop_that_is_already_running(loop_factory: LoopFactory) -> None:
    loop = loop_factory()

    async def main() -> list[tuple[type[BaseException] | None, str]]:
        coro = nothing()
        results = [
            outcome(lambda: loop.run_until_complete(coro)),
            outcome(loop.run_forever),
        ]
        coro.close()
        return results

    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    assert results == [(RuntimeError, "This event loop is already running")] * 2


@pytest.mark.parametrize("inner_name", sorted(LOOP_FACTORIES))
def test_running_a_loop_while_another_runs(loop_factory: LoopFactory, inner_name: str) -> None:
    inner_factory = LOOP_FACTORIES[inner_name]
    outer = loop_factory()
    inner = inner_factory()

    async def main() -> list[tuple[type[BaseException] | None, str]]:
        coro = nothing()
        results = [
            outcome(lambda: inner.run_until_complete(coro)),
            outcome(inner.run_forever),
        ]
        coro.close()
        return results

    try:
        results = outer.run_until_complete(main())
        # The failed attempts left the inner loop usable.
        assert inner.run_until_complete(asyncio.sleep(0, "inner ok")) == "inner ok"
    finally:
        outer.close()
        inner.close()
    assert (
        results == [(RuntimeError, "Cannot run the event loop while another loop is running")] * 2
    )


def test_closing_a_running_loop(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    results: list[tuple[type[BaseException] | None, str]] = []
    loop.call_soon(lambda: results.append(outcome(loop.close)))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    assert results == [(RuntimeError, "Cannot close a running event loop")]


def test_scheduling_on_a_closed_loop(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    coro = nothing()
    results = [
        outcome(lambda: loop.call_soon(print)),
        outcome(lambda: loop.call_soon_threadsafe(print)),
        outcome(lambda: loop.call_later(1, print)),
        outcome(lambda: loop.call_at(loop.time() + 1, print)),
        outcome(lambda: loop.create_task(coro)),
    ]
    coro.close()
    assert results == [(RuntimeError, "Event loop is closed")] * 5


def test_bad_input_errors_match_asyncio_exactly() -> None:
    """Each misuse, on both loops: same exception type and message."""

    def misuses(factory: LoopFactory) -> list[tuple[type[BaseException] | None, str]]:
        results = []
        loop = factory()
        other = factory()
        try:
            results.append(outcome(lambda: loop.run_until_complete(42)))  # type: ignore[arg-type]
            foreign = other.create_future()
            results.append(outcome(lambda: loop.run_until_complete(foreign)))

            async def stops_early() -> None:
                loop.stop()
                await asyncio.sleep(3600)

            task = loop.create_task(stops_early())
            results.append(outcome(lambda: loop.run_until_complete(task)))
            task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()
            other.close()
        coro = nothing()
        results.append(outcome(lambda: loop.run_until_complete(coro)))
        coro.close()
        return results

    expected = misuses(asyncio.new_event_loop)
    assert [e[0] for e in expected] == [TypeError, ValueError, RuntimeError, RuntimeError]
    assert expected[2] == (RuntimeError, "Event loop stopped before Future completed.")
    assert misuses(aloop.new_event_loop) == expected
    gc.collect()


def test_finish_loop_cancels_reports_and_closes(loop_factory: LoopFactory) -> None:
    """The REPL's and IPython's shutdown: leftovers cancelled, a failure reported, loop closed."""
    loop = loop_factory()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    finished: list[str] = []

    async def obedient() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            finished.append("obedient")

    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("failed while cancelled") from None

    async def agen() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            finished.append("agen")

    async def start() -> None:
        gen = agen()
        await gen.__anext__()
        loop.run_in_executor(None, time.sleep, 0)
        started.append(gen)  # kept alive, so only shutdown_asyncgens closes it

    started: list[AsyncGenerator[int, None]] = []
    tasks = [loop.create_task(obedient()), loop.create_task(failing())]
    loop.run_until_complete(start())

    aloop.runner.finish_loop(loop, "the test's end")

    assert loop.is_closed()
    assert all(task.done() for task in tasks)
    assert sorted(finished) == ["agen", "obedient"]
    assert [c["message"] for c in reported] == ["unhandled exception in a task at the test's end"]
    assert str(reported[0]["exception"]) == "failed while cancelled"
    assert reported[0]["task"] is tasks[1]
