"""Subprocess transport: a child process, its pipes, and the protocol calls they make.

``SubprocessTransport`` starts the child with ``subprocess.Popen`` and
connects its stdin/stdout/stderr pipes through the loop's pipe transports.
Protocol calls follow asyncio's order: ``connection_made`` once the pipes are
connected (anything that happened before is replayed after it), then
``pipe_data_received``/``pipe_connection_lost`` per pipe, ``process_exited``,
and ``connection_lost`` once the process has exited *and* every pipe is
closed. ``wait()`` returns once the process has exited, whatever its pipes do
(a grandchild may hold them open for ever), as asyncio does since 3.13.15 and
3.14.7 (gh-119710).

The loop reports the child's exit (``_process_exited``); see
``aloop._core.children`` for how it watches for it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import warnings
from collections.abc import Callable
from typing import Any, cast

from aloop._core.loopapi import LoopAPI
from aloop._transports.base import logger

__all__ = ["SubprocessTransport"]

# -- the per-pipe protocols ----------------------------------------------------------


class _PipeProtocol(asyncio.BaseProtocol):
    """Protocol of one child pipe: forwards its events to the subprocess transport."""

    def __init__(self, owner: SubprocessTransport, fd: int) -> None:
        self.owner: SubprocessTransport | None = owner
        self.fd = fd
        self.pipe: Any = None
        self.disconnected = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pipe = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        owner, self.owner = self.owner, None
        if owner is not None:
            owner._pipe_connection_lost(self.fd, exc)

    def pause_writing(self) -> None:
        if self.owner is not None and self.owner._protocol is not None:
            self.owner._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self.owner is not None and self.owner._protocol is not None:
            self.owner._protocol.resume_writing()


class _ReadPipeProtocol(_PipeProtocol, asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner._pipe_data_received(self.fd, data)


# -- the transport -------------------------------------------------------------------


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process and its pipes, as asyncio's ``SubprocessTransport``."""

    def __init__(
        self,
        loop: LoopAPI,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # The very dict get_extra_info() reads: "subprocess" is added once started.
        self._info: dict[str, Any] = {} if extra is None else extra
        super().__init__(self._info)
        self._closed = False
        self._loop: LoopAPI | None = loop
        self._protocol: Any = protocol
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._returncode: int | None = None
        self._exit_waiters: list[asyncio.Future[int]] | None = []
        # Protocol calls made before connection_made, replayed right after it.
        self._pending_calls: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] | None
        self._pending_calls = collections.deque()
        # fd -> its pipe protocol; None until the pipe is connected.
        self._pipes: dict[int, _PipeProtocol | None] = {}
        self._finished = False
        # Set when connecting the pipes failed: no protocol call is made any more.
        self._silent = False
        for fd, spec in ((0, stdin), (1, stdout), (2, stderr)):
            if spec == subprocess.PIPE:
                self._pipes[fd] = None
        try:
            self._proc = subprocess.Popen(
                args,
                shell=shell,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                universal_newlines=False,
                bufsize=bufsize,
                **kwargs,
            )
        except BaseException:
            self.close()
            raise
        self._pid = self._proc.pid
        self._info["subprocess"] = self._proc

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")
        stdin = self._pipes.get(0)
        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    # -- public API --------------------------------------------------------------

    def get_pid(self) -> int:
        return self._pid  # type: ignore[return-value]

    def get_returncode(self) -> int | None:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Any:
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._closed

    def send_signal(self, signal: int) -> None:
        proc = self._check_proc()
        if self._returncode is not None or proc.returncode is not None:
            return  # already reaped: the pid may belong to another process by now
        try:
            os.kill(proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Close the pipes; kill the child if it is still running."""
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is not None and proto.pipe is not None:
                proto.pipe.close()
        proc = self._proc
        if proc is not None and self._returncode is None and proc.poll() is None:
            if self._loop is not None and self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                proc.kill()
            except (ProcessLookupError, PermissionError):
                pass  # exited meanwhile, or setuid

    @property
    def _live_loop(self) -> LoopAPI:
        """The loop, until the transport is released."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self!r} is released")
        return loop

    def _check_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ProcessLookupError()
        return self._proc

    # -- driven by the loop ---------------------------------------------------------

    async def _connect_pipes(self, waiter: asyncio.Future[None]) -> None:
        """Connect the child's pipes, then make the protocol's connection."""
        try:
            proc = self._check_proc()
            loop = self._live_loop
            # Through the loop's public methods, so a wrapped connect_*_pipe applies.
            if proc.stdin is not None:
                _, proto = await loop.connect_write_pipe(lambda: _PipeProtocol(self, 0), proc.stdin)
                self._pipes[0] = cast(_PipeProtocol, proto)
            for fd, pipe in ((1, proc.stdout), (2, proc.stderr)):
                if pipe is not None:
                    _, proto = await loop.connect_read_pipe(_read_protocol_factory(self, fd), pipe)
                    self._pipes[fd] = cast(_PipeProtocol, proto)
            loop.call_soon(self._protocol.connection_made, self)
            pending, self._pending_calls = self._pending_calls, None
            assert pending is not None
            for callback, args in pending:
                loop.call_soon(callback, *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._abandon_connection()
            if not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if not waiter.cancelled():
                waiter.set_result(None)

    def _abandon_connection(self) -> None:
        """Connecting the pipes failed: the protocol, never connected, hears nothing more.

        Pipes not yet connected are closed here, so that ``_wait()`` (which the
        loop awaits after killing the child) ends once the child has exited.
        """
        self._pending_calls = None
        self._silent = True
        proc = self._proc
        if proc is not None:
            for fd, raw in ((0, proc.stdin), (1, proc.stdout), (2, proc.stderr)):
                if fd in self._pipes and self._pipes[fd] is None:
                    del self._pipes[fd]
                    if raw is not None:
                        raw.close()
        self._try_finish()

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        if self._silent:
            return
        if self._pending_calls is not None:
            self._pending_calls.append((callback, args))
        else:
            self._live_loop.call_soon(callback, *args)

    def _pipe_data_received(self, fd: int, data: bytes) -> None:
        self._call(self._protocol.pipe_data_received, fd, data)

    def _pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _process_exited(self, returncode: int) -> None:
        if self._returncode is not None:
            return
        if self._live_loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # The watcher reaped the child, so Popen never saw its status.
            proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()
        self._wake_exit_waiters()

    async def _wait(self) -> int:
        """The return code, once the process has exited (its pipes may still be open)."""
        if self._returncode is not None:
            return self._returncode
        waiter: asyncio.Future[int] = self._live_loop.create_future()
        waiters = self._exit_waiters
        assert waiters is not None
        waiters.append(waiter)
        try:
            return await waiter
        finally:
            # A cancelled wait leaves nothing behind (wait_for() in a loop, say).
            if waiters is self._exit_waiters and waiter in waiters:
                waiters.remove(waiter)

    def _wake_exit_waiters(self) -> None:
        waiters, self._exit_waiters = self._exit_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(self._returncode)  # type: ignore[arg-type]

    def _try_finish(self) -> None:
        if self._returncode is None or self._finished:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            if self._silent:
                self._live_loop.call_soon(self._release)
            else:
                self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release()

    def _release(self) -> None:
        """The end: drop the references."""
        self._loop = None
        self._proc = None
        self._protocol = None


def _read_protocol_factory(owner: SubprocessTransport, fd: int) -> Callable[[], _ReadPipeProtocol]:
    return lambda: _ReadPipeProtocol(owner, fd)
