"""The monitor: a Unix-socket endpoint about a running loop, served from its own thread.

Because it runs in its own thread it answers while the loop is blocked. The
socket lives in a directory only this user can enter (mode 0700, under
``$XDG_RUNTIME_DIR`` or the temp dir), and a peer of another uid is refused
(``SO_PEERCRED``). No TCP port is opened.

Protocol: one JSON object per connection each way, a line each.

- ``{"cmd": "ps"}``: every task, loop statistics, and what blocks the loop now.
- ``{"cmd": "cancel", "task": NAME}``: cancel the task of that name.
- ``{"cmd": "trace", "seconds": S}``: record S seconds of events; the trace JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import select
import socket
import struct
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from aloop.tooling.auto import OFF_WORDS, is_on
from aloop.tooling.stats import LoopStats
from aloop.tooling.tasks import snapshot, track, tracker_of, untrack
from aloop.tooling.trace import Trace
from aloop.tooling.watchdog import Watchdog

if TYPE_CHECKING:
    from aloop.loop import Loop

__all__ = ["Monitor", "MonitorUnavailable", "request", "socket_path"]

_MAX_REQUEST = 64 * 1024

# path -> the Monitor of this process serving it (two must not share a socket).
_serving: dict[str, Monitor] = {}
_serving_lock = threading.Lock()


def socket_dir() -> str:
    """The directory of this user's monitor sockets (``$XDG_RUNTIME_DIR`` or the temp dir)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"aloop-{os.getuid()}")


def socket_path(pid: int) -> str:
    """Where the monitor of process ``pid`` (of this user) listens."""
    return os.path.join(socket_dir(), f"{pid}.sock")


def _private_dir(path: str) -> None:
    """Create ``path`` as 0700, or check an existing one is ours and private."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.stat(path)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"monitor directory {path} is not private to this user")


def watchdog_setting() -> tuple[float, bool]:
    """(threshold, log) from ``ALOOP_WATCHDOG``: unset, 0.1 s and logged;
    ``0``/``off`` not logged; a positive number, that threshold in seconds."""
    value = os.environ.get("ALOOP_WATCHDOG", "").strip().lower()
    if value in ("", "1", "on", "yes", "true"):
        return 0.1, True
    if value in OFF_WORDS:
        return 0.1, False
    try:
        threshold = float(value)
    except ValueError:
        threshold = 0.0
    if not threshold > 0:
        raise ValueError(
            f"ALOOP_WATCHDOG={value!r}: expected 0 (no reports), 1, or a threshold in seconds"
        )
    return threshold, True


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Monitor:
    """Serves ``python -m aloop ps|pstree|top|cancel|trace|web PID`` for one loop.

    ``Monitor(loop).start()`` binds the Unix socket and starts two daemon
    threads: one answers requests (``ps``: every task, loop statistics and
    what blocks the loop now; ``cancel``; ``trace``), one is a ``Watchdog``
    reporting callbacks that block the loop. ``stop()`` (or leaving a
    ``with`` block) closes the socket, stops both threads and takes off the
    hooks the monitor put on. ``aloop.run(main(), monitor=True)`` and
    ``ALOOP_MONITOR=1`` make one for you.

    - ``path``: the socket (default: ``socket_path(os.getpid())``, where the
      CLI looks; one monitor per process can have it).
    - ``detail``: also count each task's steps and time in them (a clock
      read per step).
    - ``block_threshold``: seconds a callback may run before the watchdog
      reports it (default: ``ALOOP_WATCHDOG`` if it is a number, else 0.1).
    - ``log_blocks``: log each report to the ``aloop.watchdog`` logger, which
      prints to stderr unless logging is configured (default: yes, unless
      ``ALOOP_WATCHDOG=0``). Off, ``ps`` still shows a block in progress.
    """

    def __init__(
        self,
        loop: Loop,
        *,
        path: str | None = None,
        block_threshold: float | None = None,
        detail: bool = False,
        log_blocks: bool | None = None,
    ):
        env_threshold, env_log = watchdog_setting()
        self._loop = loop
        self.path = path or socket_path(os.getpid())
        # What this monitor turns on, it turns off at ``stop``.
        self._owns_tracker = tracker_of(loop) is None
        self.tracker = track(loop, detail=detail)
        self.stats = LoopStats(loop)
        self.watchdog = Watchdog(
            loop,
            block_threshold if block_threshold is not None else env_threshold,
            log=log_blocks if log_blocks is not None else env_log,
        )
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Monitor:
        """Bind the socket and start answering; ``RuntimeError`` if another
        monitor of this process serves the same path."""
        with _serving_lock:
            holder = _serving.get(self.path)
            if holder is not None and holder is not self:
                raise RuntimeError(
                    f"another aloop Monitor of this process serves {self.path} "
                    "(one per process on the default path; pass path=... for another)"
                )
            _serving[self.path] = self
        try:
            self._bind()
        except BaseException:
            with _serving_lock:
                _serving.pop(self.path, None)
            raise
        self.watchdog.start()
        self._thread = threading.Thread(target=self._serve, name="aloop-monitor", daemon=True)
        self._thread.start()
        return self

    def _bind(self) -> None:
        _private_dir(os.path.dirname(self.path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a dead process with a reused pid
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(self.path)
            os.chmod(self.path, 0o600)
            server.listen(8)
        except BaseException:
            server.close()
            raise
        self._server = server

    def stop(self) -> None:
        """Close the socket, stop the threads, take this monitor's hooks off."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        with _serving_lock:
            if _serving.get(self.path) is self:
                del _serving[self.path]
        self.watchdog.stop()
        loop = self._loop
        if loop.is_running() and threading.get_ident() != loop._thread_id:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to unhook
                loop.call_soon_threadsafe(self._unhook)
        else:
            self._unhook()

    def _unhook(self) -> None:
        """Take this monitor's hooks off the loop (on its thread)."""
        if self._owns_tracker and tracker_of(self._loop) is self.tracker:
            untrack(self._loop)
        self.stats.close()

    # -- serving (monitor thread) ---------------------------------------------------

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            readable, _, _ = select.select([self._server], [], [], 0.1)
            if not readable:
                continue
            conn, _ = self._server.accept()
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if _peer_uid(conn) != os.getuid():
                reply: dict[str, Any] = {"error": "permission denied: not the same user"}
            else:
                reply = self.handle(json.loads(_read_line(conn)))
        except Exception as exc:  # a bad request must not kill the monitor
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """Answer one request (see the module docstring); an unknown command gets an error."""
        cmd = req.get("cmd")
        if cmd == "ps":
            return self._ps()
        if cmd == "cancel":
            return self._cancel(str(req.get("task")))
        if cmd == "trace":
            return self._trace(float(req.get("seconds", 5.0)))
        return {"error": f"unknown command {cmd!r}"}

    def _ps(self) -> dict[str, Any]:
        # The loop thread may change what we walk; under the GIL that shows up
        # as an occasional RuntimeError ("changed size during iteration").
        for _ in range(10):
            try:
                rows = snapshot(self._loop, include_done=False)
                break
            except RuntimeError:
                time.sleep(0.001)
        else:
            rows = []
        block = self.watchdog.current_block()
        running = None
        if block is not None:
            running = {"for": block[0], "by": block[1]}
        stats = dataclasses.asdict(self.stats.snapshot())
        stats["longest_callback"] = self.watchdog.longest
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "tasks": [dataclasses.asdict(row) for row in rows],
            "stats": stats,
            "running": running,
            # Steps and CPU per task are counted only with detail=True.
            "counted": self.tracker.detail,
        }

    def _cancel(self, name: str) -> dict[str, Any]:
        for task in asyncio.all_tasks(self._loop):
            if task.get_name() == name:
                # Task.cancel is not thread-safe: the loop thread does it.
                self._loop.call_soon_threadsafe(task.cancel)
                return {"ok": f"cancelling {name!r}"}
        return {"error": f"no pending task named {name!r}"}

    def _trace(self, seconds: float) -> dict[str, Any]:
        trace = Trace()
        detached = threading.Event()

        def detach() -> None:
            self._loop.remove_instrument(trace)
            detached.set()

        self._loop.call_soon_threadsafe(self._loop.add_instrument, trace)
        self._stop.wait(seconds)
        self._loop.call_soon_threadsafe(detach)
        # The loop finishes the events in flight (an I/O wait ends when this
        # wakes it); a blocked loop gets a bounded wait and a partial trace.
        detached.wait(1.0)
        return trace.to_json()


def _read_line(conn: socket.socket, limit: int = _MAX_REQUEST) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > limit:
            raise ValueError("request too large")
    return b"".join(chunks)


class MonitorUnavailable(RuntimeError):
    """No monitor answers for that process; the message says why and what to do."""


def request(pid: int, payload: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the monitor of process ``pid``; return its reply.

    ``MonitorUnavailable`` says why none answers: no such process, a process
    without a running monitor, a stale socket (removed), or no answer in time.
    """
    path = _find_socket(pid)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(json.dumps(payload).encode() + b"\n")
            # A reply (every task of a big server) may be large; a request may not.
            reply: dict[str, Any] = json.loads(_read_line(conn, 1 << 31))
    except (FileNotFoundError, ConnectionRefusedError):
        raise MonitorUnavailable(diagnose(pid, path)) from None
    except TimeoutError:
        raise MonitorUnavailable(
            f"the monitor of process {pid} did not answer within {timeout:g} s ({path})"
        ) from None
    except ValueError:  # closed before a whole reply: the process is exiting
        raise MonitorUnavailable(f"the monitor of process {pid} closed without answering") from None
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


def _environ(pid: int) -> dict[str, str] | None:
    """The environment process ``pid`` started with, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as env:
            raw = env.read()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def _find_socket(pid: int) -> str:
    """The socket path: ours for that pid, or where that process's own
    ``XDG_RUNTIME_DIR`` / ``TMPDIR`` puts it when that one exists."""
    path = socket_path(pid)
    if os.path.exists(path):
        return path
    env = _environ(pid)
    if env:
        base = env.get("XDG_RUNTIME_DIR") or env.get("TMPDIR") or env.get("TEMP") or env.get("TMP")
        if base:
            theirs = os.path.join(base, f"aloop-{os.getuid()}", f"{pid}.sock")
            if os.path.exists(theirs):
                return theirs
    return path


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        return ""
    text = " ".join(word.decode(errors="replace") for word in words if word)
    return f" ({text[:60]}{'...' if len(text) > 60 else ''})" if text else ""


def _remove_stale(path: str) -> str:
    try:
        os.unlink(path)
    except OSError as exc:
        return f"; remove it with: rm {path} ({exc.strerror})"
    return "; removed it"


def diagnose(pid: int, path: str) -> str:
    """Why no monitor answers at ``path`` for process ``pid``, and what to do."""
    stale = os.path.exists(path)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        message = f"no process {pid}: it has exited, or the pid is wrong"
        if stale:
            message += f". Its monitor socket {path} was left behind (stale)"
            message += _remove_stale(path)
        return message
    except PermissionError:
        return (
            f"process {pid} belongs to another user: its monitor answers only "
            "that user (run python -m aloop as them)"
        )
    who = f"process {pid}{_command(pid)}"
    if stale:
        return (
            f"{who} is running but nothing listens on {path}: the socket is stale "
            f"(left by an earlier process with the same pid, or a monitor that died)"
            + _remove_stale(path)
            + ". Restart the program with its monitor on (ALOOP_MONITOR=1)"
        )
    env = _environ(pid)
    setting = env.get("ALOOP_MONITOR") if env is not None else None
    if setting is not None and is_on(setting):
        return (
            f"{who} has ALOOP_MONITOR={setting} but serves no monitor ({path}): "
            "no aloop event loop is running in it now. It has not started one yet, "
            "its loop has closed, another loop of it holds the monitor, or it runs on "
            "another event loop (uvicorn: --loop aloop:new_event_loop; "
            "asyncio.run(main(), loop_factory=aloop.new_event_loop))"
        )
    how = (
        "start it with ALOOP_MONITOR=1 in its environment, or aloop.run(main(), "
        "monitor=True), or aloop.Monitor(loop).start()"
    )
    if setting is not None:
        return f"{who} runs with ALOOP_MONITOR={setting!r}, so it has no monitor: {how}"
    return f"{who} runs no aloop monitor (no socket {path}): {how}"
