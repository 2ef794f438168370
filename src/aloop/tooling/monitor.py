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
from typing import Any

from aloop.tooling.stats import LoopStats
from aloop.tooling.tasks import snapshot, track, untrack
from aloop.tooling.trace import Trace
from aloop.tooling.watchdog import Watchdog

__all__ = ["Monitor", "request", "socket_path"]

_MAX_REQUEST = 64 * 1024


def socket_dir() -> str:
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


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Monitor:
    """Serves ``ps``, ``cancel`` and ``trace`` for one loop on a Unix socket."""

    def __init__(
        self,
        loop: Any,
        *,
        path: str | None = None,
        block_threshold: float = 0.1,
        detail: bool = False,
    ):
        """``detail``: also count each task's steps and time in them (compiled, per step)."""
        self._loop = loop
        self.path = path or socket_path(os.getpid())
        # What this monitor turns on, it turns off at ``stop``.
        self._owns_tracker = getattr(loop, "_aloop_task_tracker", None) is None
        self._measured_idle = loop._measure_idle
        self.tracker = track(loop, detail=detail)
        self.stats = LoopStats(loop)
        self.watchdog = Watchdog(loop, block_threshold)
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> Monitor:
        _private_dir(os.path.dirname(self.path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a dead process with a reused pid
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        os.chmod(self.path, 0o600)
        server.listen(8)
        self._server = server
        self.watchdog.start()
        self._thread = threading.Thread(target=self._serve, name="aloop-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.watchdog.stop()
        loop = self._loop
        if loop.is_running() and threading.get_ident() != loop._thread_id:
            loop.call_soon_threadsafe(self._unhook)
        else:
            self._unhook()

    def _unhook(self) -> None:
        """Take this monitor's hooks off the loop (on its thread)."""
        if self._owns_tracker and getattr(self._loop, "_aloop_task_tracker", None) is self.tracker:
            untrack(self._loop)
        self._loop._measure_idle = self._measured_idle

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


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("request too large")
    return data


def request(pid: int, payload: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the monitor of process ``pid``; return its reply."""
    path = socket_path(pid)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no aloop monitor for process {pid} (expected {path}); run it with "
            "aloop.run(main(), monitor=True) or ALOOP_MONITOR=1"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(json.dumps(payload).encode() + b"\n")
        reply: dict[str, Any] = json.loads(_read_line(conn))
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply
