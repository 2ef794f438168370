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
    "test_events": ((3, 11), 6.0),
    "test_sock_lowlevel": ((3, 11), 1.0),
    "test_streams": ((3, 11), 2.0),
    "test_server": ((3, 11), 0.5),
    "test_buffered_proto": ((3, 11), 0.2),
    "test_sendfile": ((3, 11), 1.5),
    "test_ssl": ((3, 11), 15.0),
    "test_sslproto": ((3, 11), 4.0),
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
)


#: Modules only partly in scope: the tests whose *method name* matches one of these
#: ``fnmatch`` patterns run, the others are not collected at all (on either loop).
#: Applied by ``harness.py`` when it loads the module, so every run agrees.
#: test_events: the subprocess, pipe, pty and signal tests (issue 4). Its network
#: tests belong to the network work (issue 3), which widens this list when it lands.
#: (test_write_pipe_disconnect_on_close also needs ``loop.sock_recv``.)
#: A pattern starting with ``!`` excludes.
_TEST_PATTERNS: dict[str, tuple[str, ...]] = {
    "test_events": (
        "test_*subprocess*",
        "test_*read_pipe*",
        "test_write_pipe*",
        "test_unclosed_pipe_transport",
        "test_*pty*",
        "test_*signal*",
        # Network (issue 3): sockets, connections, servers, datagrams, TLS.
        "test_create_connection*",
        "test_create_server*",
        "test_create_unix_*",
        "test_create_ssl_*",
        "test_connect_accepted_socket*",
        "test_ssl_connect_accepted_socket",
        "test_create_datagram_endpoint*",
        "test_datagram_*",
        "test_server_close",
        "test_prompt_cancellation",
    ),
}


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
