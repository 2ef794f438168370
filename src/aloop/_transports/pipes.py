"""Pipe transports: one end of a pipe, FIFO, socket, character device or pty.

``ReadPipeTransport`` feeds what it reads to ``protocol.data_received`` and
reports EOF; ``WritePipeTransport`` buffers what the fd cannot take yet and
applies asyncio's write flow control (``base.WriteFlow``). Both put the fd
in non-blocking mode and own the pipe object: closing the transport closes it.

The order of protocol calls is asyncio's: ``connection_made`` first, reading
only after it, and ``connection_lost`` exactly once, last.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import warnings
from collections.abc import Callable
from typing import Any

from aloop._core.loopapi import LoopAPI
from aloop._transports.base import (
    MAX_READ,
    WOULD_BLOCK,
    WriteFlow,
    connection_lost_then,
    count_lost_write,
    logger,
    lose_connection,
    report_fatal,
    repr_state,
    set_result_unless_cancelled,
    warn_unclosed,
)

__all__ = ["ReadPipeTransport", "WritePipeTransport"]


def _fd_mode(fileno: int) -> int:
    return os.fstat(fileno).st_mode


class _PipeTransport(asyncio.BaseTransport):
    """What both ends share: the pipe, its fd, the protocol and the end of the connection.

    The pipe is held only once it is accepted (``__del__`` must not close a
    refused one); ``connection_lost()`` lets go of the pipe, the protocol and
    the loop.
    """

    def __init__(self, pipe: Any, extra: dict[str, Any] | None) -> None:
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        super().__init__(extra)
        self._pipe: Any = None
        self._closing = False
        self._fileno: int = pipe.fileno()

    def _open(self, loop: LoopAPI, pipe: Any, protocol: asyncio.BaseProtocol) -> None:
        """Hold the pipe, make its fd non-blocking and schedule ``connection_made()``."""
        self._loop: LoopAPI | None = loop
        self._pipe = pipe
        self._protocol: Any = protocol
        os.set_blocking(self._fileno, False)
        loop.call_soon(protocol.connection_made, self)

    @property
    def _live_loop(self) -> LoopAPI:
        """The loop, until ``connection_lost()`` has run."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self!r} is closed")
        return loop

    def _repr_head(self) -> tuple[list[str], bool]:
        """The repr words both ends share, and whether the pipe is live on its loop."""
        info = repr_state(self, self._pipe is None, self._closing, self._fileno)
        if self._pipe is None:
            info.append("closed")
        elif self._loop is None or self._loop.is_closed():
            info.append("open")
        else:
            return info, True
        return info, False

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._pipe is not None:
            warn_unclosed(self, self._pipe, _warn)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._protocol
        return protocol

    def is_closing(self) -> bool:
        return self._closing

    def _released_if_loop_closed(self) -> bool:
        """Closing after the loop closed: close the pipe now, as no callback will ever run.

        True also when the transport is already released (nothing left to close).
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return False
        if self._pipe is not None:
            self._pipe.close()
        self._pipe = None
        self._protocol = None
        self._loop = None
        return True

    def _drop_buffer(self) -> bool:
        """Forget what waits to be written; whether anything did (the write end has a buffer)."""
        return False

    def _close(self, exc: BaseException | None) -> None:
        """``abort()``, a fatal error or the peer gone: drop the buffer, connection_lost(exc)."""
        self._closing = True
        if self._released_if_loop_closed():
            return
        flushing = self._drop_buffer()
        lose_connection(self._live_loop, self._fileno, flushing, self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        connection_lost_then(self._protocol, exc, self._release)

    def _release(self) -> None:
        """What a pipe lets go of once the connection is lost: the pipe, protocol and loop."""
        self._pipe.close()
        self._pipe = None
        self._protocol = None
        self._loop = None


class ReadPipeTransport(_PipeTransport, asyncio.ReadTransport):
    """The read end of a pipe-like fd."""

    max_size = MAX_READ

    def __init__(
        self,
        loop: LoopAPI,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(pipe, extra)
        self._paused = False
        mode = _fd_mode(self._fileno)
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is for pipes/sockets only.")
        self._open(loop, pipe, protocol)
        # Start reading only once connection_made() has run.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        info, live = self._repr_head()
        if live:
            info.append("polling" if self.is_reading() else "idle")
        return "<{}>".format(" ".join(info))

    def _start_reading(self) -> None:
        if self.is_reading():
            self._live_loop._add_reader(self._fileno, self._read_ready)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fileno, self.max_size)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if data:
            self._protocol.data_received(data)
            return
        # EOF: the write end is closed everywhere.
        if self._live_loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._live_loop.call_soon(self._protocol.eof_received)
        lose_connection(self._live_loop, self._fileno, False, self._call_connection_lost, None)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if not self.is_reading():
            return
        self._paused = True
        self._live_loop._remove_reader(self._fileno)
        if self._live_loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._live_loop._add_reader(self._fileno, self._read_ready)
        if self._live_loop.get_debug():
            logger.debug("%r resumes reading", self)

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        # A pty's EIO is the other side going away.
        quiet = isinstance(exc, OSError) and exc.errno == errno.EIO
        report_fatal(self._live_loop, self, self._protocol, exc, message, quiet)
        self._close(exc)


class WritePipeTransport(_PipeTransport, asyncio.Transport):
    """The write end of a pipe-like fd, with a write buffer and flow control."""

    def __init__(
        self,
        loop: LoopAPI,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(pipe, extra)
        self._flow = WriteFlow()
        self._buffer = bytearray()
        self._conn_lost = 0
        mode = _fd_mode(self._fileno)
        is_socket = stat.S_ISSOCK(mode)
        is_fifo = stat.S_ISFIFO(mode)
        if not (stat.S_ISCHR(mode) or is_fifo or is_socket):
            raise ValueError("Pipe transport is only for pipes, sockets and character devices")
        self._open(loop, pipe, protocol)
        if is_socket or is_fifo:
            # The write end of a pipe turns readable when the read end is closed:
            # that is how the transport learns the reader went away.
            loop.call_soon(loop._add_reader, self._fileno, self._read_ready)
        if waiter is not None:
            loop.call_soon(set_result_unless_cancelled, waiter, None)

    def __repr__(self) -> str:
        info, live = self._repr_head()
        if live:
            info.append("polling" if self._buffer else "idle")
            info.append(f"bufsize={self.get_write_buffer_size()}")
        return "<{}>".format(" ".join(info))

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._flow.limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._flow.set_limits(high, low)
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._loop is not None:
            self._flow.buffered(len(self._buffer), self._loop, self, self._protocol)

    @property
    def _protocol_paused(self) -> bool:
        return self._flow.paused

    def _read_ready(self) -> None:
        # The reader closed its end (pipes never carry data this way).
        if self._live_loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._close(BrokenPipeError() if self._buffer else None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if isinstance(data, bytearray):
            data = memoryview(data)
        if not data:
            return
        if self._conn_lost or self._closing:
            self._conn_lost = count_lost_write(
                self._conn_lost, "pipe closed by peer or os.write(pipe, data) raised exception."
            )
            return
        if not self._buffer:
            # Nothing queued: try writing straight away.
            try:
                sent = os.write(self._fileno, data)
            except WOULD_BLOCK:
                sent = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            self._live_loop._add_writer(self._fileno, self._write_ready)
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            sent = os.write(self._fileno, self._buffer)
        except WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._buffer.clear()
            self._conn_lost += 1
            # Drop the writer first: _fatal_error would close with a buffer to discard.
            self._live_loop._remove_writer(self._fileno)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if sent < len(self._buffer):
            del self._buffer[:sent]
            return
        self._buffer.clear()
        self._live_loop._remove_writer(self._fileno)
        self._flow.drained(len(self._buffer), self._live_loop, self, self._protocol)
        if self._closing:
            # write_eof() or close() was waiting for the buffer to drain.
            self._live_loop._remove_reader(self._fileno)
            self._call_connection_lost(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            lose_connection(self._live_loop, self._fileno, False, self._call_connection_lost, None)

    def close(self) -> None:
        """Close once the buffer is flushed (like ``write_eof``)."""
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        """Close now, dropping whatever is buffered."""
        self._close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        report_fatal(self._live_loop, self, self._protocol, exc, message, isinstance(exc, OSError))
        self._close(exc)

    def _drop_buffer(self) -> bool:
        flushing = bool(self._buffer)
        self._buffer.clear()
        return flushing
