"""Sending files: ``sock_sendfile`` and ``sendfile`` over a transport.

Plain sockets use zero-copy ``os.sendfile``; where it cannot be used (a TLS
transport, a file without an fd) the file is read in the executor and
written in blocks, respecting the transport's flow control.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import sys
from asyncio.constants import _SendfileMode
from typing import Any

from aloop._core.loopapi import LoopAPI
from aloop._transports.sockops import check_socket

__all__ = ["SendfileMode", "sendfile", "sock_sendfile"]

# Blocks of the read-and-write fallbacks (asyncio's sizes).
SOCK_FALLBACK_BLOCK = 256 * 1024
TRANSPORT_FALLBACK_BLOCK = 16 * 1024

_NotAvailable = asyncio.SendfileNotAvailableError

# Since 3.14.6 (gh-150107) asyncio always leaves the file at offset + bytes
# sent, even when nothing was sent or the offset is 0; before, it moved the
# file only after sending something and seeked to the start only if offset.
SEEK_ALWAYS = sys.version_info >= (3, 14, 6)


# What a transport's ``_sendfile_compatible`` says: asyncio's own enum, so
# code that inspects it (stdlib's or ours) agrees.
SendfileMode = _SendfileMode


def check_params(sock: socket.socket, file: Any, offset: Any, count: Any) -> None:
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


async def sock_sendfile(
    loop: LoopAPI,
    sock: socket.socket,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
) -> int:
    check_socket(loop, sock)
    check_params(sock, file, offset, count)
    try:
        return await _sock_sendfile_native(loop, sock, file, offset, count)
    except _NotAvailable:
        if not fallback:
            raise
    return await _sock_sendfile_fallback(loop, sock, file, offset, count)


def _file_fd(file: Any) -> int:
    """The fd of a regular file, or SendfileNotAvailableError."""
    if not hasattr(os, "sendfile"):
        raise _NotAvailable("os.sendfile() is not available")
    try:
        fileno: int = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise _NotAvailable("not a regular file") from None
    try:
        os.fstat(fileno)
    except OSError:
        raise _NotAvailable("not a regular file") from None
    return fileno


async def _sock_sendfile_native(
    loop: LoopAPI, sock: socket.socket, file: Any, offset: int, count: int | None
) -> int:
    fileno = _file_fd(file)
    blocksize = count if count else os.fstat(fileno).st_size
    if not blocksize:
        return 0  # an empty file
    fd = sock.fileno()
    fut: asyncio.Future[int] = loop.create_future()
    sent_total = 0
    position = offset
    waiting = False

    def finish() -> None:
        # Leave the file position after what was sent, as the fallback does.
        if sent_total > 0 or SEEK_ALWAYS:
            os.lseek(fileno, position, os.SEEK_SET)

    def step() -> None:
        nonlocal sent_total, position, waiting
        if fut.done():
            return
        size = blocksize if not count else count - sent_total
        if count and size <= 0:
            finish()
            fut.set_result(sent_total)
            return
        try:
            sent = os.sendfile(fd, fileno, position, size)
        except (BlockingIOError, InterruptedError):
            sent = -1
        except OSError as exc:
            finish()
            if sent_total == 0:
                fut.set_exception(_NotAvailable("os.sendfile call failed"))
            elif waiting and exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
                error = ConnectionError("socket is not connected", errno.ENOTCONN)
                error.__cause__ = exc
                fut.set_exception(error)
            else:
                fut.set_exception(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            finish()
            fut.set_exception(exc)
            return
        if sent == 0:
            finish()
            fut.set_result(sent_total)
            return
        if sent > 0:
            position += sent
            sent_total += sent
        if not waiting:
            waiting = True
            loop._add_writer(fd, step)

    def on_done(_: object) -> None:
        if waiting and sock.fileno() != -1:
            loop._remove_writer(fd)
        if fut.cancelled() and sent_total > 0:
            os.lseek(fileno, position, os.SEEK_SET)

    fut.add_done_callback(on_done)
    step()
    return await fut


def _seek_to_start(file: Any, offset: int) -> None:
    """Move the file to where the fallback starts reading, as asyncio does."""
    if SEEK_ALWAYS:
        if hasattr(file, "seek"):
            file.seek(offset)
    elif offset:
        file.seek(offset)


async def _sock_sendfile_fallback(
    loop: LoopAPI, sock: socket.socket, file: Any, offset: int, count: int | None
) -> int:
    _seek_to_start(file, offset)
    blocksize = min(count, SOCK_FALLBACK_BLOCK) if count else SOCK_FALLBACK_BLOCK
    buf = bytearray(blocksize)
    sent_total = 0
    try:
        while True:
            if count:
                blocksize = min(count - sent_total, blocksize)
                if blocksize <= 0:
                    break
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                break
            await loop.sock_sendall(sock, view[:read])
            sent_total += read
        return sent_total
    finally:
        if sent_total > 0 and hasattr(file, "seek"):
            file.seek(offset + sent_total)


# -- loop.sendfile(transport, ...) ---------------------------------------------------


async def sendfile(
    loop: LoopAPI,
    transport: Any,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
) -> int:
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    mode = getattr(transport, "_sendfile_compatible", SendfileMode.UNSUPPORTED)
    if mode is SendfileMode.UNSUPPORTED:
        raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
    if mode is SendfileMode.TRY_NATIVE:
        try:
            # Through the loop, as asyncio does, so a loop subclass can replace it.
            return await loop._sendfile_native(transport, file, offset, count)
        except _NotAvailable:
            if not fallback:
                raise
    if not fallback:
        raise RuntimeError(
            f"fallback is disabled and native sendfile is not supported for transport {transport!r}"
        )
    return await _transport_sendfile_fallback(loop, transport, file, offset, count)


async def transport_sendfile_native(
    loop: LoopAPI, transport: Any, file: Any, offset: int, count: int | None
) -> int:
    """Hand the socket to ``os.sendfile`` once the transport's buffer has drained."""
    fd = transport._sock_fd
    loop._detach_transport(fd, transport)  # sock_sendfile waits on this fd itself
    resume_reading = transport.is_reading()
    transport.pause_reading()
    await transport._make_empty_waiter()
    try:
        return await sock_sendfile(loop, transport._sock, file, offset, count, fallback=False)
    except OSError as exc:
        # A failed write breaks a stream transport, whether write() or sendfile did it.
        transport._fatal_error(exc, "Fatal write error on socket transport")
        raise
    finally:
        transport._reset_empty_waiter()
        if resume_reading:
            transport.resume_reading()
        loop._attach_transport(fd, transport)


class _Interposer(asyncio.Protocol):
    """Stands in for the transport's protocol while the fallback writes.

    Reading is paused; pause/resume_writing become a future the fallback
    awaits; connection_lost passes through.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._proto = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._resume_writing = bool(transport._protocol_paused)
        transport.pause_reading()
        transport.set_protocol(self)
        self._writable: asyncio.Future[None] | None = None
        if self._resume_writing:
            self._writable = transport._loop.create_future()

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport: Any) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(exc or ConnectionError("Connection is closed by peer"))
        self._proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._transport._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set_result(None)
            self._writable = None

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> bool | None:
        raise RuntimeError("Invalid state: reading should be paused")

    def restore(self) -> None:
        self._transport.set_protocol(self._proto)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._writable is not None:
            self._writable.cancel()
        if self._resume_writing:
            self._proto.resume_writing()


async def _transport_sendfile_fallback(
    loop: LoopAPI, transport: Any, file: Any, offset: int, count: int | None
) -> int:
    _seek_to_start(file, offset)
    blocksize = min(count, TRANSPORT_FALLBACK_BLOCK) if count else TRANSPORT_FALLBACK_BLOCK
    buf = bytearray(blocksize)
    sent_total = 0
    interposer = _Interposer(transport)
    try:
        while True:
            if count:
                blocksize = min(count - sent_total, blocksize)
                if blocksize <= 0:
                    return sent_total
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                return sent_total
            await interposer.drain()
            transport.write(view[:read])  # copied if buffered: buf is reused
            sent_total += read
    finally:
        if sent_total > 0 and hasattr(file, "seek"):
            file.seek(offset + sent_total)
        interposer.restore()
