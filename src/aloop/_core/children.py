"""Child exit watching: how a loop learns that a subprocess has exited.

Where the kernel has pidfds (Linux 5.3+), each child gets one: it becomes
readable when the child exits and is polled like any other fd, so no thread
is needed. Elsewhere (or if ``pidfd_open`` fails) a daemon thread per child
waits for the exit with ``waitid(WNOWAIT)`` and reports through a pipe the
loop polls. Either way the loop thread reaps the child and publishes its exit
in one step: until the exit is published the pid stays a zombie, so
``send_signal()`` can never reach another process recycled onto it. No
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aloop._core.clock import TimeHold
    from aloop._core.scheduler import BaseLoop

__all__ = ["ChildWatchers", "pidfd_supported"]

_logger = logging.getLogger("asyncio")

ExitCallback = Callable[[int], None]

# Without waitid() (no such Unix today) a waiting thread has to reap the child itself.
_HAVE_WAITID = hasattr(os, "waitid")


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


def _wait_unreaped(pid: int) -> None:
    """Block until child ``pid`` has exited, leaving it a zombie for the loop to reap."""
    while True:
        try:
            result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return  # reaped elsewhere (Popen.poll(), say): the loop's reap will tell
        if result is not None and result.si_code == os.CLD_STOPPED:
            # macOS reports a stopped child as exited: consume that and wait on.
            os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG)
            continue
        return


def _reap_and_set(proc: subprocess.Popen[Any]) -> None:
    """On a reaper thread: wait for the child, keep its ``Popen`` right."""
    returncode = reap(proc, block=True)
    if proc.returncode is None:
        proc.returncode = returncode


def _reap_later(proc: subprocess.Popen[Any]) -> None:
    """Reap ``proc`` now if it has exited, else on a reaper thread once it does."""
    returncode = reap(proc, block=False)
    if returncode is not None:
        if proc.returncode is None:
            proc.returncode = returncode
        return
    name = f"aloop-waitpid-{proc.pid}"
    threading.Thread(target=_reap_and_set, args=(proc,), name=name, daemon=True).start()


class _ThreadReports:
    """Exits seen by waiting threads, handed to the loop through a polled pipe.

    A thread only learns that its child has exited; the loop thread reaps the
    child when it publishes the exit (``_publish``).
    """

    def __init__(self, loop: BaseLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        # (child, callback, returncode if a thread without waitid() reaped it)
        self._exits: collections.deque[tuple[subprocess.Popen[Any], ExitCallback, int | None]]
        self._exits = collections.deque()
        # pid -> child: reported exited, not yet reaped by the loop.
        self._unreaped: dict[int, subprocess.Popen[Any]] = {}
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._closed = False
        loop._add_reader(self._read_fd, self._drain)

    def watch(self, proc: subprocess.Popen[Any], on_exit: ExitCallback) -> None:
        """Start the thread that waits for ``proc`` to exit."""
        threading.Thread(
            target=self._wait, args=(proc, on_exit), name=f"aloop-waitpid-{proc.pid}", daemon=True
        ).start()

    def _wait(self, proc: subprocess.Popen[Any], on_exit: ExitCallback) -> None:
        """On the waiting thread: wait for the exit, then wake the loop."""
        returncode: int | None = None
        if _HAVE_WAITID:
            _wait_unreaped(proc.pid)
        else:
            returncode = reap(proc, block=True)
        with self._lock:
            # Under the lock: after close() the fd number may belong to another file.
            closed = self._closed
            if not closed:
                self._exits.append((proc, on_exit, returncode))
                if returncode is None:
                    self._unreaped[proc.pid] = proc
                try:
                    os.write(self._write_fd, b"\0")
                except BlockingIOError:
                    pass  # the pipe is full: the loop is due to drain it anyway
        if closed:
            # Nobody is left to tell: reap here, and keep Popen right.
            if returncode is None:
                returncode = reap(proc, block=True)
            proc.returncode = returncode

    def _drain(self) -> None:
        try:
            while os.read(self._read_fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            exits, self._exits = self._exits, collections.deque()
        for proc, on_exit, returncode in exits:
            # A callback of its own, as asyncio's threaded watcher reports through
            # call_soon_threadsafe.
            self._loop.call_soon(self._publish, proc, on_exit, returncode)

    def _publish(
        self, proc: subprocess.Popen[Any], on_exit: ExitCallback, returncode: int | None
    ) -> None:
        """Reap the child and report its exit, with nothing in between."""
        if returncode is None:
            returncode = reap(proc, block=False)
            with self._lock:
                self._unreaped.pop(proc.pid, None)
            if returncode is None:
                self.watch(proc, on_exit)  # not exited after all: wait again
                return
        on_exit(returncode)

    def close(self, same_process: bool) -> None:
        with self._lock:
            self._closed = True
            unreaped, self._unreaped = self._unreaped, {}
            exits, self._exits = self._exits, collections.deque()
            if same_process:
                self._loop._remove_reader(self._read_fd)
            os.close(self._read_fd)
            os.close(self._write_fd)
        for proc, _, returncode in exits:
            if returncode is not None and proc.returncode is None:
                proc.returncode = returncode  # reaped by a thread without waitid()
        if same_process:
            # Reported exited, never published: zombies until reaped here.
            for proc in unreaped.values():
                _reap_later(proc)


class ChildWatchers:
    """The children one loop waits for."""

    def __init__(self, loop: BaseLoop) -> None:
        self._loop = loop
        self._use_pidfd = pidfd_supported()
        # pidfd -> (Popen, callback): the children watched through pidfds.
        self._pidfds: dict[int, tuple[subprocess.Popen[Any], ExitCallback]] = {}
        self._threads: _ThreadReports | None = None
        # pid -> the virtual-time hold a live child keeps (virtual-time loops only).
        self._holds: dict[int, TimeHold] = {}

    def watch(self, proc: subprocess.Popen[Any], on_exit: ExitCallback) -> None:
        """Call ``on_exit(returncode)`` on the loop once ``proc`` has exited and been reaped."""
        clock = self._loop.virtual_clock
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
        reports.watch(proc, on_exit)

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
        # In the same callback as the reap: the exit is published before
        # anything else runs, so nothing can signal the freed pid.
        on_exit(returncode)

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
            if same_process:
                _reap_later(proc)
        if self._threads is not None:
            self._threads.close(same_process)
            self._threads = None
