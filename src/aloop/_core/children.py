"""Child exit watching: how a loop learns that a subprocess has exited.

Where the kernel has pidfds (Linux 5.3+), each child gets one: it becomes
readable when the child exits and is polled like any other fd, so no thread
is needed. Elsewhere (or if ``pidfd_open`` fails) a daemon thread per child
blocks in ``waitpid`` and reports through a pipe the loop polls. Either way
the loop waits for the exit as I/O, and the watcher reaps the child: no
zombie is left. On a virtual-time loop a live child holds time (like an
executor job), so a timeout cannot jump ahead of a child still running.

Children still running when the loop closes are handed to reaper threads.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ChildWatchers", "pidfd_supported"]

_logger = logging.getLogger("asyncio")

ExitCallback = Callable[[int], None]


def pidfd_supported() -> bool:
    """Whether this kernel gives pidfds (and no seccomp filter forbids them)."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError:
        return False  # ENOSYS before Linux 5.3, EPERM under some sandboxes
    os.close(fd)
    return True


def reap(proc: subprocess.Popen[Any], block: bool) -> int | None:
    """Collect the child's exit status; None if it is still running (``block=False``)."""
    try:
        pid, status = os.waitpid(proc.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        # Someone else reaped it, e.g. Popen.poll() inside Popen.kill().
        if proc.returncode is not None:
            return int(proc.returncode)
        _logger.warning(
            "child process pid %d exit status already read: will report returncode 255",
            proc.pid,
        )
        return 255
    if pid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _in_thread(proc: subprocess.Popen[Any], done: Callable[[int], None]) -> None:
    """Block in ``waitpid`` on a daemon thread, then call ``done(returncode)`` there."""

    def wait() -> None:
        returncode = reap(proc, block=True)
        assert returncode is not None
        done(returncode)

    threading.Thread(target=wait, name=f"aloop-waitpid-{proc.pid}", daemon=True).start()


def _set_returncode(proc: subprocess.Popen[Any]) -> Callable[[int], None]:
    def done(returncode: int) -> None:
        proc.returncode = returncode

    return done


class _ThreadReports:
    """Exits seen by waitpid threads, handed to the loop through a polled pipe."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._exits: collections.deque[tuple[ExitCallback, int]] = collections.deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._closed = False
        loop._add_reader(self._read_fd, self._drain)

    def report(self, proc: subprocess.Popen[Any], on_exit: ExitCallback, returncode: int) -> None:
        """From a waitpid thread: queue the exit and wake the loop."""
        with self._lock:
            # Under the lock: after close() the fd number may belong to another file.
            if self._closed:
                proc.returncode = returncode  # nobody is left to tell; keep Popen right
                return
            self._exits.append((on_exit, returncode))
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: the loop is due to drain it anyway

    def _drain(self) -> None:
        try:
            while os.read(self._read_fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._exits:
            on_exit, returncode = self._exits.popleft()
            self._loop.call_soon(on_exit, returncode)

    def close(self, same_process: bool) -> None:
        with self._lock:
            self._closed = True
            if same_process:
                self._loop._remove_reader(self._read_fd)
            os.close(self._read_fd)
            os.close(self._write_fd)


class ChildWatchers:
    """The children one loop waits for."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._use_pidfd = pidfd_supported()
        # pidfd -> (Popen, callback): the children watched through pidfds.
        self._pidfds: dict[int, tuple[subprocess.Popen[Any], ExitCallback]] = {}
        self._threads: _ThreadReports | None = None
        # pid -> the virtual-time hold a live child keeps (virtual-time loops only).
        self._holds: dict[int, Any] = {}

    def watch(self, proc: subprocess.Popen[Any], on_exit: ExitCallback) -> None:
        """Call ``on_exit(returncode)`` on the loop once ``proc`` has exited and been reaped."""
        clock = getattr(self._loop, "virtual_clock", None)
        if clock is not None:
            hold = clock.hold()
            hold.acquire()
            self._holds[proc.pid] = hold
            on_exit = self._releasing(proc.pid, on_exit)
        pidfd = -1
        if self._use_pidfd:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pidfd = -1  # out of fds, say: the thread still works
        if pidfd >= 0:
            self._pidfds[pidfd] = (proc, on_exit)
            self._loop._add_reader(pidfd, self._pidfd_ready, pidfd)
            return
        reports = self._threads
        if reports is None:
            reports = self._threads = _ThreadReports(self._loop)
        _in_thread(proc, lambda returncode: reports.report(proc, on_exit, returncode))

    def _releasing(self, pid: int, on_exit: ExitCallback) -> ExitCallback:
        def exited(returncode: int) -> None:
            hold = self._holds.pop(pid, None)
            if hold is not None:
                hold.release()
            on_exit(returncode)

        return exited

    def _pidfd_ready(self, pidfd: int) -> None:
        proc, on_exit = self._pidfds[pidfd]
        returncode = reap(proc, block=False)
        if returncode is None:
            return  # not exited after all: keep waiting
        del self._pidfds[pidfd]
        self._loop._remove_reader(pidfd)
        os.close(pidfd)
        # A callback of its own, as asyncio's watchers report through call_soon_threadsafe.
        self._loop.call_soon(on_exit, returncode)

    def close(self, same_process: bool) -> None:
        """Stop watching; children still running are reaped by threads when they exit.

        ``same_process`` False: the loop was inherited through fork(); those
        children are not this process's to reap, and the poller is the parent's.
        """
        holds, self._holds = self._holds, {}
        for hold in holds.values():
            hold.release()
        pidfds, self._pidfds = self._pidfds, {}
        for pidfd, (proc, _) in pidfds.items():
            if same_process:
                self._loop._remove_reader(pidfd)
            os.close(pidfd)
            if not same_process:
                continue
            returncode = reap(proc, block=False)
            if returncode is None:
                _in_thread(proc, _set_returncode(proc))
            else:
                proc.returncode = returncode
        if self._threads is not None:
            self._threads.close(same_process)
            self._threads = None
