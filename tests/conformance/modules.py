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
)


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
