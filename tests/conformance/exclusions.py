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

# Python 3.14's tests that reach into the stdlib loop's private machinery.
_WATCHER_CLASS = (
    "asserts loop._watcher is an instance of the private asyncio.unix_events."
    "_PidfdChildWatcher / _ThreadedChildWatcher; aloop watches its children itself "
    "(children.py), with the same observable behaviour"
)
EXCLUSIONS.update(
    {
        "test_subprocess.SubprocessPidfdWatcherTests.test_watcher_implementation": _WATCHER_CLASS,
        "test_subprocess.SubprocessThreadedWatcherTests.test_watcher_implementation": (
            _WATCHER_CLASS
        ),
        "test_subprocess.SubprocessThreadedWatcherTests."
        "test_pid_not_reaped_before_exit_published": (
            "finds the waiting thread through the private loop._watcher._threads; the behaviour "
            "(no pid reaped before its exit is published) is tested on aloop by "
            "tests/test_subprocess.py::test_the_waiting_thread_leaves_the_reaping_to_the_loop"
        ),
        "test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data_on_slow_socket": (
            "wraps the stdlib socket transport's private _read_ready_cb and replaces its _sock; "
            "the behaviour is covered by test_remote_shutdown_receives_trailing_data, which runs"
        ),
        "test_sslproto.SelectorStartTLSTests."
        "test_create_connection_ssl_failed_certificate_no_cycles": (
            "patches asyncio.sslproto.SSLProtocol.connection_made, which aloop's own TLS layer "
            "never calls; the absence of cycles is tested on both loops by tests/test_tls.py::"
            "test_failed_tls_handshake_leaves_no_cycles"
        ),
        "test_sslproto.SslProtoHandshakeTests.test_connection_lost_when_busy": (
            "builds a transport with the stdlib loop's private _make_socket_transport on a mock "
            "socket; the same check runs against aloop's TLS layer in tests/test_tls_own.py::"
            "test_cpython_sslprotocol_unit_tests_pass_on_ours"
        ),
    }
)
