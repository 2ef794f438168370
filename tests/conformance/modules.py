"""Which CPython ``test.test_asyncio`` modules the conformance run covers.

Every module listed here is run twice, once on the stdlib event loop and once on
aloop, and every test that passes on the stdlib loop must also pass on aloop
(see ``compare.py``).  A module that does not exist in a given interpreter's
test suite is skipped with the reason recorded in :data:`MIN_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Module name -> (first Python version that ships it, relative cost).
#
# The cost is only used to schedule the most expensive modules first when the
# runs are spread over several processes (roughly: seconds on the stdlib loop).
_IN_SCOPE: dict[str, tuple[tuple[int, int], float]] = {
    "test_tasks": ((3, 11), 20.0),
    "test_taskgroups": ((3, 11), 6.0),
    "test_waitfor": ((3, 11), 1.0),
    "test_locks": ((3, 11), 1.0),
    "test_eager_task_factory": ((3, 12), 1.0),
    "test_timeouts": ((3, 11), 0.5),
    "test_runners": ((3, 11), 0.5),
    "test_queues": ((3, 11), 0.4),
    "test_context": ((3, 11), 0.3),
    "test_futures2": ((3, 11), 0.2),
    "test_threads": ((3, 11), 0.2),
    "test_subprocess": ((3, 11), 8.0),
    "test_events": ((3, 11), 8.0),
    "test_sock_lowlevel": ((3, 11), 1.0),
    "test_streams": ((3, 11), 2.0),
    "test_server": ((3, 11), 0.5),
    "test_buffered_proto": ((3, 11), 0.2),
    "test_sendfile": ((3, 11), 1.5),
    "test_ssl": ((3, 11), 15.0),
    "test_sslproto": ((3, 11), 4.0),
    "test_graph": ((3, 14), 0.5),
    "test_free_threading": ((3, 14), 1.0),
    "test_tools": ((3, 14), 0.3),
    "test_server_context": ((3, 15), 1.0),
}

#: All modules in scope, in a stable, documented order.
ALL_MODULES: tuple[str, ...] = (
    "test_tasks",
    "test_futures2",
    "test_locks",
    "test_queues",
    "test_runners",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_threads",
    "test_context",
    "test_eager_task_factory",
    "test_subprocess",
    "test_events",
    "test_sock_lowlevel",
    "test_streams",
    "test_server",
    "test_buffered_proto",
    "test_sendfile",
    "test_ssl",
    "test_sslproto",
    "test_graph",
    "test_free_threading",
    "test_tools",
    "test_server_context",
)


#: Modules only partly in scope: the tests whose *method name* matches one of these
#: ``fnmatch`` patterns run, the others are not collected at all (on either loop).
#: Applied by ``harness.py`` when it loads the module, so every run agrees
#: (``harness.py --all-tests`` ignores them). A pattern starting with ``!`` excludes.
#: None today: test_events runs whole since its last tests (thread-safe handles,
#: the pure-Python Task in TestPyGetEventLoop) pass on aloop.
_TEST_PATTERNS: dict[str, tuple[str, ...]] = {}


def test_patterns(module: str) -> tuple[str, ...] | None:
    """The method-name patterns selecting ``module``'s tests; None: all of them."""
    return _TEST_PATTERNS.get(module)


@dataclass(frozen=True)
class ModuleSelection:
    """The in-scope modules for one interpreter version."""

    run: tuple[str, ...]
    skipped: dict[str, str]


#: Modules big enough to be split over several harness processes ("--shard K/N").
#: test_tasks spends much of its time sleeping, so sharding it pays off even on 2 CPUs.
_SHARDS: dict[str, int] = {"test_tasks": 3}


def shards(module: str) -> int:
    """How many harness processes ``module`` is split over."""
    return _SHARDS.get(module, 1)


def cost(module: str) -> float:
    """Relative run time of ``module`` (unknown modules are assumed cheap)."""
    return _IN_SCOPE.get(module, ((0, 0), 1.0))[1] / shards(module)


def modules_for(version: tuple[int, int]) -> ModuleSelection:
    """Return the modules to run for Python ``version`` and the skipped ones with a reason."""
    run: list[str] = []
    skipped: dict[str, str] = {}
    for name in ALL_MODULES:
        min_version = _IN_SCOPE[name][0]
        if version < min_version:
            skipped[name] = (
                f"test.test_asyncio.{name} does not exist before Python "
                f"{min_version[0]}.{min_version[1]}"
            )
        else:
            run.append(name)
    return ModuleSelection(run=tuple(run), skipped=skipped)
