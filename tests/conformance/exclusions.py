"""Tests that pass on the stdlib loop but cannot apply to a third-party loop.

Maps a test id as written by ``harness.py`` (``<module>.<Class>.<method>``,
e.g. ``test_tasks.CTask_CFuture_Tests.test_foo``) to the reason it is excluded.

Rules for adding an entry:

* only after running it against the real aloop and reading the failing test;
* only if the test checks a CPython implementation detail (a mocked
  ``BaseEventLoop``, private attributes of the stdlib loop, a patched
  ``asyncio.base_events`` global, ...) rather than observable asyncio behaviour;
* with a specific reason naming the internal detail.

Failures that are aloop bugs are never excluded: they are regressions.
"""

from __future__ import annotations

_MOCKED_SERVER_SOCKETS = (
    "patches asyncio.base_events.socket (the module global the stdlib's create_server "
    "builds its listening sockets with) and the stdlib-private loop._start_serving; the "
    "mock's invented getsockbyname() is then read back from server.sockets, so the test "
    "only works where create_server is asyncio.base_events' own code"
)

EXCLUSIONS: dict[str, str] = {
    "test_subprocess.GenericWatcherTests.test_create_subprocess_fails_with_inactive_watcher": (
        "installs a mock asyncio.AbstractChildWatcher (the deprecated child-watcher API of "
        "the stdlib's _UnixSelectorEventLoop) and asserts the loop consults it; aloop watches "
        "its children itself (pidfd, or a waitpid thread) and never asks the policy's watcher"
    ),
}

# test_events' three loop classes run the same network tests.
EXCLUSIONS.update(
    {
        f"test_events.{cls}.test_create_server_multiple_hosts_{family}": _MOCKED_SERVER_SOCKETS
        for cls in ("EPollEventLoopTests", "PollEventLoopTests", "SelectEventLoopTests")
        for family in ("ipv4", "ipv6")
    }
)

_EVENTS_LOOP_CLASSES = ("EPollEventLoopTests", "PollEventLoopTests", "SelectEventLoopTests")

EXCLUSIONS.update(
    {
        f"test_events.{cls}.test_internal_fds": (
            "asserts the stdlib selector loop's private _internal_fds count and its "
            "_csock/_ssock self-pipe sockets; the test skips itself on any loop that is not "
            "an asyncio.selector_events.BaseSelectorEventLoop"
        )
        for cls in _EVENTS_LOOP_CLASSES
    }
)
EXCLUSIONS.update(
    {
        f"test_events.{cls}.test_timeout_rounding": (
            "counts iterations by replacing the private loop._run_once on the instance (which "
            "the stdlib's run_forever looks up each time) and builds its assertion message "
            "from the stdlib-private loop._selector"
        )
        for cls in _EVENTS_LOOP_CLASSES
    }
)
