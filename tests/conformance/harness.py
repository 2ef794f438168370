#!/usr/bin/env python3
"""Run CPython's ``test.test_asyncio`` modules on a chosen event loop, record outcomes as JSON.

Usage::

    python tests/conformance/harness.py --loop aloop --module test_tasks
        [--module test_locks ...] [--only TEST_ID_OR_PREFIX ...] [--shard K/N]
        [--timeout 20] [--all-tests] [--json OUT.json]

``--loop`` is ``stdlib`` (asyncio's default loop), ``aloop`` (``aloop.EventLoopPolicy``)
or ``package.module:attr`` where ``attr`` is an ``asyncio.AbstractEventLoopPolicy``
subclass or a zero-argument callable returning a new event loop.

How the loop is injected (identically for every ``--loop``, so the stdlib run is
the exact baseline of the candidate run):

* an instance of the loop's policy is installed, and ``asyncio.set_event_loop_policy``
  (3.14+: also the private ``asyncio.events._set_event_loop_policy`` the tests call
  instead) is wrapped so that ``set_event_loop_policy(None)`` (which every test
  module calls in ``tearDownModule``, and ``test_runners`` in ``tearDown``)
  re-installs it instead of falling back to the stdlib policy; other policies set
  by tests are honoured;
* ``asyncio.SelectorEventLoop`` and ``asyncio.EventLoop`` (3.13+) are pointed at the
  loop class, for tests that construct "the default loop" by class name
  (``test_runners``' ``test_loop_factory_default_event_loop``);
* ``test_runners.BaseTest.new_loop`` builds a *mocked* ``asyncio.BaseEventLoop``
  (fake selector, fake self-pipe), i.e. it never runs a real loop; it is replaced by
  a real loop from the policy, keeping the ``shutdown_ag_run`` flag its ``tearDown``
  checks;
* ``test_asyncio.utils.TestCase.close_loop`` reads the stdlib-private
  ``loop._default_executor``; for loops without that attribute it falls back to the
  public ``shutdown_default_executor()`` + ``close()``.

Tests built on ``test_utils.TestCase.new_test_loop()`` run on the stdlib's virtual-time
``TestLoop`` whatever ``--loop`` is; they still exercise the Task/Future code.

Each run happens in a worker subprocess that streams one JSON event per line.  A
per-test watchdog (``faulthandler.dump_traceback_later(exit=True)``) kills a worker
stuck in one test; the driver then records that test as failed (with the dumped
tracebacks), and restarts a worker for the remaining tests.  Hard crashes of the
worker (e.g. a segfault in compiled code) are handled the same way.  A worker that
dies after a test's result but before the next test starts is blamed on that test
(``IsolatedAsyncioTestCase`` closes its loop only after reporting the result).

The JSON report: ``{"loop", "python", "executable", "loop_class", "policy_class",
"loop_origin", "adaptations": [...], "modules": {name: {"status": "ran" | "missing" |
"skipped" | "import-error", "tests" | "reason"}}, "tests": {test_id: {"outcome",
"duration", "details", "loops", ["hung"]}}, "problems": [...], "fatal", "worker_runs",
"wall_time", ...}``.

Outcomes: ``pass``, ``fail``, ``error``, ``skip``, ``xfail`` (expected failure) and
``xpass`` (unexpected success); ``details`` holds the (truncated) traceback or skip
reason.  ``loops`` is how many loops the test created through the installed policy
(0: it only used the stdlib's ``TestLoop``, a mock, or no loop).  A test that hung
(timed out) or crashed its worker has outcome ``fail`` and a ``hung`` key.  Test ids
are ``<module>.<Class>.<method>``, e.g. ``test_tasks.CTask_CFuture_Tests.test_cancel``;
errors in class or module fixtures get ids like ``test_tasks.SomeClass.setUpClass``.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import fnmatch
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import types
import unittest
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

# modules.py sits next to this file (the script's directory is on sys.path).
from modules import test_patterns

PACKAGE = "test.test_asyncio"
OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass")
#: Outcomes that count as "the test passed".
PASSING = frozenset({"pass", "xfail"})
DEFAULT_TIMEOUT = 20.0

_MAX_DETAIL_LINES = 60
_MAX_DETAIL_CHARS = 6000
# Outcome severity: the worst outcome seen for a test (e.g. over subtests) wins.
_SEVERITY = {"pass": 0, "skip": 1, "xfail": 2, "xpass": 3, "fail": 4, "error": 5}

Event = dict[str, Any]
TestResultRecord = dict[str, Any]


# --------------------------------------------------------------------------- utilities


def short_id(unittest_id: str) -> str:
    """``test.test_asyncio.test_tasks.X.test_y`` -> ``test_tasks.X.test_y``."""
    return unittest_id.replace(PACKAGE + ".", "")


def _fixture_id(description: str) -> str:
    """Id of a fixture error: ``setUpClass (pkg.mod.Cls)`` -> ``mod.Cls.setUpClass``."""
    match = re.fullmatch(r"(\w+) \((.+)\)", description)
    if match is None:
        return short_id(description)
    return f"{short_id(match.group(2))}.{match.group(1)}"


def _truncate(text: str) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > _MAX_DETAIL_LINES:
        lines = ["[...]", *lines[-_MAX_DETAIL_LINES:]]
    out = "\n".join(lines)
    if len(out) > _MAX_DETAIL_CHARS:
        out = "[...]" + out[-_MAX_DETAIL_CHARS:]
    return out


def _iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for child in suite:
            yield from _iter_tests(child)
    else:
        yield suite


def _selected(test_id: str, only: list[str]) -> bool:
    return not only or any(test_id == o or test_id.startswith(o + ".") for o in only)


def _in_scope(test_id: str, patterns: tuple[str, ...] | None) -> bool:
    """Whether a test's method name matches its module's patterns (modules.test_patterns).

    A pattern starting with ``!`` excludes what it matches; a module with only
    such patterns runs every other test.
    """
    if patterns is None:
        return True
    method = test_id.rsplit(".", 1)[-1]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(method, p) for p in exclude):
        return False
    return not include or any(fnmatch.fnmatchcase(method, p) for p in include)


def _shards(tests: list[unittest.TestCase], count: int) -> list[int]:
    """A deterministic shard number for each test.

    Test modules run the same method in several classes (test_tasks: 8 Task/Future
    variants), and a few methods dominate the run time, so the variants of each
    method are dealt round-robin over the shards, starting at a hash of its name.
    """
    seen: dict[str, int] = {}
    shards = []
    for test in tests:
        method = test.id().rsplit(".", 1)[-1]
        nth = seen[method] = seen.get(method, -1) + 1
        shards.append((zlib.crc32(method.encode()) + nth) % count)
    return shards


def _parse_shard(shard: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``: run the K-th of N shards of the tests (see ``_shards``)."""
    index, _, count = shard.partition("/")
    k, n = int(index), int(count or 1)
    if not 0 <= k < n:
        raise ValueError(f"bad --shard {shard!r}: need 0 <= K < N")
    return k, n


# --------------------------------------------------------------------------- loop injection


class LoopInfo:
    """The loop under test, as installed in the worker."""

    def __init__(self, spec: str, policy_cls: type[asyncio.AbstractEventLoopPolicy]) -> None:
        self.spec = spec
        self.policy_cls = policy_cls
        probe = policy_cls().new_event_loop()
        try:
            self.loop_cls: type[asyncio.AbstractEventLoop] = type(probe)
        finally:
            probe.close()
        self.adaptations: list[str] = []
        #: Loops created through the installed policy; lets the report show which
        #: tests really ran on the loop under test (None: policy can't be subclassed).
        self.loops_created: int | None = 0
        self.installed_policy_cls = self._counting_policy(policy_cls)
        # A private instance: tests may install other policies globally.
        self._factory_policy = self.installed_policy_cls()

    def _counting_policy(
        self, policy_cls: type[asyncio.AbstractEventLoopPolicy]
    ) -> type[asyncio.AbstractEventLoopPolicy]:
        info = self

        try:

            class CountingPolicy(policy_cls):  # type: ignore[valid-type,misc]
                def new_event_loop(self) -> asyncio.AbstractEventLoop:
                    if info.loops_created is not None:
                        info.loops_created += 1
                    loop: asyncio.AbstractEventLoop = super().new_event_loop()
                    return loop

            CountingPolicy.__qualname__ = policy_cls.__qualname__
            CountingPolicy.__module__ = policy_cls.__module__
            CountingPolicy().new_event_loop().close()
        except Exception:
            self.loops_created = None
            return policy_cls
        self.loops_created = 0
        return CountingPolicy

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """A new loop under test, whatever policy is currently installed."""
        return self._factory_policy.new_event_loop()


def _qualname(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _origin(cls: type) -> str:
    """Where ``cls``'s package was imported from, and whether it is compiled (if it says)."""
    package = sys.modules.get(cls.__module__.split(".")[0])
    where = getattr(package, "__file__", None) or "?"
    compiled = getattr(package, "COMPILED", None)
    return where if compiled is None else f"{where} (COMPILED={compiled})"


def _resolve_policy(spec: str) -> type[asyncio.AbstractEventLoopPolicy]:
    if spec == "stdlib":
        return asyncio.DefaultEventLoopPolicy
    if spec == "aloop":
        import aloop  # type: ignore[import-not-found,unused-ignore]

        policy: type[asyncio.AbstractEventLoopPolicy] = aloop.EventLoopPolicy
        return policy
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--loop must be 'stdlib', 'aloop' or 'module:attr', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, asyncio.AbstractEventLoopPolicy):
        return obj
    if not callable(obj):
        raise TypeError(f"{spec!r} is neither an event loop policy class nor a loop factory")
    factory: Callable[[], asyncio.AbstractEventLoop] = obj

    class FactoryPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return factory()

    FactoryPolicy.__qualname__ = f"FactoryPolicy[{spec}]"
    return FactoryPolicy


def install_loop(spec: str) -> LoopInfo:
    """Make ``spec``'s loop the one every asyncio entry point used by the tests gets."""
    policy_cls = _resolve_policy(spec)
    info = LoopInfo(spec, policy_cls)
    if not issubclass(policy_cls, asyncio.DefaultEventLoopPolicy):
        info.adaptations.append(
            f"warning: {_qualname(policy_cls)} does not subclass asyncio.DefaultEventLoopPolicy"
        )

    events = asyncio.events
    original_set_policy = events.set_event_loop_policy

    def set_event_loop_policy(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
        original_set_policy(info.installed_policy_cls() if policy is None else policy)

    events.set_event_loop_policy = set_event_loop_policy
    asyncio.set_event_loop_policy = set_event_loop_policy
    # 3.14+: the tests reset the policy through the private setter (the public
    # one is deprecated), which the public one also calls.
    original_private_set = getattr(events, "_set_event_loop_policy", None)
    if original_private_set is not None:

        def set_policy_private(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
            original_private_set(info.installed_policy_cls() if policy is None else policy)

        events._set_event_loop_policy = set_policy_private  # type: ignore[attr-defined]
    set_event_loop_policy(None)
    info.adaptations.append(
        f"policy {_qualname(policy_cls)} installed; set_event_loop_policy(None) "
        "(and 3.14's private _set_event_loop_policy(None)) re-installs it"
    )

    for name in ("SelectorEventLoop", "EventLoop"):
        if hasattr(asyncio, name):
            setattr(asyncio, name, info.loop_cls)
            info.adaptations.append(f"asyncio.{name} -> {_qualname(info.loop_cls)}")

    _adapt_test_utils(info)
    return info


def _adapt_test_utils(info: LoopInfo) -> None:
    test_utils: Any = importlib.import_module(f"{PACKAGE}.utils")

    original_close_loop: Callable[[asyncio.AbstractEventLoop], None] = (
        test_utils.TestCase.close_loop
    )

    def close_loop(loop: asyncio.AbstractEventLoop) -> None:
        if hasattr(loop, "_default_executor"):
            original_close_loop(loop)
            return
        # Same as the original minus the stdlib-private attribute.
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    test_utils.TestCase.close_loop = staticmethod(close_loop)
    info.adaptations.append(
        "test_utils.TestCase.close_loop: public API for loops without _default_executor"
    )


def _adapt_test_runners(module: types.ModuleType, info: LoopInfo) -> None:
    base = getattr(module, "BaseTest", None)
    if base is None or not hasattr(base, "new_loop"):
        return

    def new_loop(self: unittest.TestCase) -> asyncio.AbstractEventLoop:
        loop = info.new_loop()
        real_shutdown_asyncgens = loop.shutdown_asyncgens
        loop_any: Any = loop

        async def shutdown_asyncgens() -> None:
            loop_any.shutdown_ag_run = True
            await real_shutdown_asyncgens()

        loop_any.shutdown_ag_run = False
        loop_any.shutdown_asyncgens = shutdown_asyncgens
        return loop

    base.new_loop = new_loop
    info.adaptations.append(
        "test_runners.BaseTest.new_loop: real loop from the policy instead of a mocked "
        "asyncio.BaseEventLoop"
    )


def _adapt_test_events(module: types.ModuleType, info: LoopInfo) -> None:
    """Build each test class's loop from the policy.

    The Unix classes call ``asyncio.SelectorEventLoop(selectors.XSelector())``,
    a stdlib constructor taking a ``selectors`` object; a loop that does not poll
    through ``selectors`` cannot take one. On every loop (stdlib included, so the
    baseline stays comparable) each class gets the policy's loop instead.
    """
    adapted = []
    for name, cls in vars(module).items():
        if (
            isinstance(cls, type)
            and issubclass(cls, unittest.TestCase)
            and "create_event_loop" in vars(cls)
        ):
            cls.create_event_loop = lambda self: info.new_loop()  # type: ignore[attr-defined]
            adapted.append(name)
    if adapted:
        info.adaptations.append(
            f"test_events: create_event_loop of {', '.join(sorted(adapted))} -> the policy's "
            "loop (instead of SelectorEventLoop(<selectors object>))"
        )


#: Per-module adaptations applied right after the module is imported.
MODULE_ADAPTATIONS: dict[str, Callable[[types.ModuleType, LoopInfo], None]] = {
    "test_runners": _adapt_test_runners,
    "test_events": _adapt_test_events,
    # Same constructor calls (SelectorEventLoop(selectors.XSelector())) in its classes.
    "test_sock_lowlevel": _adapt_test_events,
    "test_sendfile": _adapt_test_events,
}


# --------------------------------------------------------------------------- worker


class _Recorder(unittest.TestResult):
    """Streams one ``result`` event per test (subtest failures folded into their test)."""

    def __init__(
        self, emit: Callable[[Event], None], arm: Callable[[], None], info: LoopInfo
    ) -> None:
        super().__init__()
        self._info = info
        self._loops_before: int | None = None
        self._emit = emit
        self._arm = arm
        self._test: unittest.TestCase | None = None
        self._outcome = "pass"
        self._details: list[str] = []
        self._started = 0.0

    def _record(self, test: unittest.TestCase, outcome: str, detail: str | None) -> None:
        if test is self._test:
            if _SEVERITY[outcome] > _SEVERITY[self._outcome]:
                self._outcome = outcome
            if detail:
                self._details.append(detail)
            return
        # Class/module fixture errors and skips are reported on an _ErrorHolder
        # that never went through startTest().
        if isinstance(test, unittest.TestCase):
            test_id = short_id(test.id())
        else:
            test_id = _fixture_id(test.id())
        self._emit(
            {
                "event": "result",
                "id": test_id,
                "outcome": outcome,
                "duration": 0.0,
                "details": _truncate(detail) if detail else None,
            }
        )

    def _format(self, err: Any, test: unittest.TestCase) -> str:
        try:
            return self._exc_info_to_string(err, test)  # type: ignore[attr-defined,no-any-return]
        except Exception:
            return "".join(traceback.format_exception(*err))

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._arm()
        self._test = test
        self._outcome = "pass"
        self._details = []
        self._emit({"event": "start", "id": short_id(test.id())})
        self._loops_before = self._info.loops_created
        self._started = time.perf_counter()

    def stopTest(self, test: unittest.TestCase) -> None:
        duration = time.perf_counter() - self._started
        super().stopTest(test)
        details = "\n".join(self._details)
        loops = None
        if self._info.loops_created is not None and self._loops_before is not None:
            loops = self._info.loops_created - self._loops_before
        self._emit(
            {
                "event": "result",
                "id": short_id(test.id()),
                "outcome": self._outcome,
                "duration": round(duration, 4),
                "details": _truncate(details) if details else None,
                "loops": loops,
            }
        )
        self._test = None
        self._arm()

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "pass", None)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        self._record(test, "error", self._format(err, test))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._record(test, "fail", self._format(err, test))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._record(test, "xfail", None)

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "xpass", "unexpected success")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        if err is None:
            return
        outcome = "fail" if issubclass(err[0], test.failureException) else "error"
        self._record(
            test,
            outcome,
            f"[subtest {subtest._subDescription()}]\n"  # type: ignore[attr-defined]
            + self._format(err, test),
        )


def worker_main(args: argparse.Namespace) -> int:
    fd = os.open(args.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def emit(event: Event) -> None:
        os.write(fd, (json.dumps(event) + "\n").encode())

    tb_file: TextIO = open(args.tb_file, "w")  # stays open for faulthandler
    faulthandler.enable(file=tb_file, all_threads=True)

    def arm() -> None:
        faulthandler.dump_traceback_later(args.timeout, exit=True, file=tb_file)

    arm()
    try:
        info = install_loop(args.loop)
    except BaseException:
        emit({"event": "fatal", "details": _truncate(traceback.format_exc())})
        os._exit(2)
    emit(
        {
            "event": "info",
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "loop_class": _qualname(info.loop_cls),
            "policy_class": _qualname(info.policy_cls),
            "loop_origin": _origin(info.loop_cls),
            "adaptations": info.adaptations,
        }
    )

    shard_index, shard_count = _parse_shard(args.shard)
    skip: set[str] = set()
    if args.skip_file:
        skip = set(json.loads(Path(args.skip_file).read_text()))
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for name in args.module:
        qualified = f"{PACKAGE}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise
            emit(
                {
                    "event": "module",
                    "module": name,
                    "status": "missing",
                    "reason": f"{qualified} does not exist in Python {sys.version.split()[0]}",
                }
            )
            continue
        except unittest.SkipTest as exc:
            emit({"event": "module", "module": name, "status": "skipped", "reason": str(exc)})
            continue
        except Exception:
            emit(
                {
                    "event": "module",
                    "module": name,
                    "status": "import-error",
                    "reason": _truncate(traceback.format_exc()),
                }
            )
            continue
        adapt = MODULE_ADAPTATIONS.get(name)
        if adapt is not None:
            adapt(module, info)
        count = 0
        patterns = None if args.all_tests else test_patterns(name)
        selected = [
            test
            for test in _iter_tests(loader.loadTestsFromModule(module))
            if _selected(short_id(test.id()), args.only)
            and _in_scope(short_id(test.id()), patterns)
        ]
        for test, shard in zip(selected, _shards(selected, shard_count), strict=True):
            test_id = short_id(test.id())
            if test_id in skip or shard != shard_index:
                continue
            suite.addTest(test)
            count += 1
        emit({"event": "module", "module": name, "status": "ran", "tests": count})
    if info.adaptations:
        # Module adaptations are appended while importing; send the final list.
        emit({"event": "adaptations", "adaptations": info.adaptations})

    suite.run(_Recorder(emit, arm, info))
    faulthandler.cancel_dump_traceback_later()
    emit({"event": "done"})
    sys.stdout.flush()
    sys.stderr.flush()
    # Don't let threads leaked by a broken loop hang interpreter shutdown.
    os._exit(0)


# --------------------------------------------------------------------------- driver


def _read_events(path: Path) -> list[Event]:
    events: list[Event] = []
    if not path.exists():
        return events
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut short by a crash
    return events


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run(
    loop: str,
    modules: list[str],
    *,
    only: list[str] | None = None,
    shard: str = "0/1",
    timeout: float = DEFAULT_TIMEOUT,
    python: str | None = None,
    max_restarts: int = 25,
    all_tests: bool = False,
) -> dict[str, Any]:
    """Run ``modules`` on ``loop`` in worker subprocesses; return the JSON-able report."""
    python = python or sys.executable
    started = time.monotonic()
    report: dict[str, Any] = {
        "format": 1,
        "loop": loop,
        "shard": shard,
        "modules": {},
        "tests": {},
        "problems": [],
        "worker_runs": 0,
        "timeout": timeout,
        "fatal": None,
    }
    tests: dict[str, TestResultRecord] = report["tests"]
    with tempfile.TemporaryDirectory(prefix="aloop-conformance-") as tmp:
        tmpdir = Path(tmp)
        while True:
            attempt = report["worker_runs"]
            report["worker_runs"] += 1
            events_path = tmpdir / f"events{attempt}.jsonl"
            tb_path = tmpdir / f"faulthandler{attempt}.txt"
            log_path = tmpdir / f"output{attempt}.txt"
            skip_path = tmpdir / f"skip{attempt}.json"
            skip_path.write_text(json.dumps(sorted(tests)))
            cmd = [
                python,
                str(Path(__file__).resolve()),
                "--worker",
                "--loop",
                loop,
                "--events",
                str(events_path),
                "--tb-file",
                str(tb_path),
                "--skip-file",
                str(skip_path),
                "--timeout",
                str(timeout),
                "--shard",
                shard,
            ]
            for name in modules:
                cmd += ["--module", name]
            for test_id in only or ():
                cmd += ["--only", test_id]
            if all_tests:
                cmd.append("--all-tests")
            killed = False
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
                # Backstop for the in-process faulthandler watchdog.
                last_size, last_change = -1, time.monotonic()
                while proc.poll() is None:
                    time.sleep(0.1)
                    size = events_path.stat().st_size if events_path.exists() else 0
                    if size != last_size:
                        last_size, last_change = size, time.monotonic()
                    elif time.monotonic() - last_change > timeout + 30:
                        proc.kill()
                        killed = True
                        proc.wait()
            rc = proc.returncode

            events = _read_events(events_path)
            current: str | None = None  # started, no result yet
            last_finished: str | None = None  # the last test with a result
            done = False
            new_results = 0
            for event in events:
                kind = event["event"]
                if kind == "start":
                    current = event["id"]
                elif kind == "result":
                    record = {k: event.get(k) for k in ("outcome", "duration", "details", "loops")}
                    tests[event["id"]] = record
                    new_results += 1
                    if event["id"] == current:
                        current, last_finished = None, current
                elif kind == "module":
                    name = event["module"]
                    entry = {k: v for k, v in event.items() if k not in ("event", "module")}
                    if attempt == 0 or name not in report["modules"]:
                        report["modules"][name] = entry
                elif kind == "info":
                    for key in (
                        "python",
                        "executable",
                        "loop_class",
                        "policy_class",
                        "loop_origin",
                        "adaptations",
                    ):
                        report[key] = event[key]
                elif kind == "adaptations":
                    report["adaptations"] = event["adaptations"]
                elif kind == "fatal":
                    report["fatal"] = event["details"]
                elif kind == "done":
                    done = True
            if done or report["fatal"] is not None:
                if report["fatal"] is not None:
                    report["fatal"] += "\n--- worker output ---\n" + _tail(log_path)
                break

            faulthandler_dump = _tail(tb_path, 80)
            if killed:
                why = f"worker killed after {timeout + 30:.0f}s without progress"
            elif faulthandler_dump.startswith("Timeout"):
                why = f"timed out after {timeout:g}s (hung test; worker killed)"
            else:
                why = f"worker died with exit status {rc}"
            detail = why
            if faulthandler_dump:
                detail += "\n--- faulthandler ---\n" + faulthandler_dump
            detail += "\n--- worker output (tail) ---\n" + _tail(log_path, 20)
            hung = killed or faulthandler_dump.startswith("Timeout")
            if current is not None:
                tests[current] = {
                    "outcome": "fail",
                    "duration": None,
                    "details": _truncate(detail),
                    "hung": hung,
                }
            elif last_finished is not None:
                # Died after a test's result but before the next test started: in
                # the test's own teardown (e.g. IsolatedAsyncioTestCase closes its
                # Runner after stopTest) or in a following tearDownClass/Module.
                previous = tests[last_finished]
                tests[last_finished] = {
                    "outcome": "fail",
                    "duration": previous.get("duration"),
                    "details": _truncate(
                        f"{why}, after the test had finished ({previous['outcome']}): in "
                        "its teardown (IsolatedAsyncioTestCase closes its loop after the "
                        "result is reported) or in a tearDownClass/tearDownModule that "
                        f"followed\n{detail}"
                    ),
                    "hung": hung,
                    "loops": previous.get("loops"),
                }
            else:
                report["problems"].append(f"outside any test: {why}\n{_truncate(detail)}")
                if new_results == 0:
                    break
            if report["worker_runs"] > max_restarts:
                report["problems"].append(f"giving up after {max_restarts} worker restarts")
                break
    report["wall_time"] = round(time.monotonic() - started, 2)
    return report


def summarize(report: dict[str, Any]) -> str:
    lines = [
        f"loop={report['loop']} python={report.get('python')} "
        f"loop_class={report.get('loop_class')} wall={report['wall_time']}s"
    ]
    counts: dict[str, dict[str, int]] = {}
    for test_id, record in report["tests"].items():
        module = test_id.split(".", 1)[0]
        per = counts.setdefault(module, dict.fromkeys(OUTCOMES, 0))
        per[record["outcome"]] += 1
    for module, meta in report["modules"].items():
        if meta.get("status") != "ran":
            lines.append(f"  {module}: {meta.get('status')}: {meta.get('reason')}")
            continue
        per = counts.get(module, dict.fromkeys(OUTCOMES, 0))
        lines.append("  " + module + ": " + " ".join(f"{k}={v}" for k, v in per.items() if v))
    if report["fatal"]:
        lines.append("FATAL: " + report["fatal"])
    lines.extend("PROBLEM: " + p.splitlines()[0] for p in report["problems"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--loop",
        default="stdlib",
        help="stdlib, aloop, or module:attr (policy class or loop factory)",
    )
    parser.add_argument(
        "--module",
        action="append",
        required=True,
        help="test.test_asyncio module name, e.g. test_tasks (repeatable)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only this test id or id prefix (repeatable)",
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        metavar="K/N",
        help="run only the K-th of N deterministic shards of the tests",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="per-test timeout in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--all-tests",
        action="store_true",
        help="ignore modules.py's name patterns: run every test of partly covered modules",
    )
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--tb-file", help=argparse.SUPPRESS)
    parser.add_argument("--skip-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    _parse_shard(args.shard)
    report = run(
        args.loop,
        args.module,
        only=args.only,
        shard=args.shard,
        timeout=args.timeout,
        all_tests=args.all_tests,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, sort_keys=True))
    print(summarize(report), file=sys.stderr)
    return 1 if report["fatal"] else 0


if __name__ == "__main__":
    sys.exit(main())
