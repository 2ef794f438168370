"""The loop's wakeup fd: how another thread interrupts a sleeping poll.

An eventfd where the kernel has one (one fd, and writes never fill up),
else a non-blocking pipe.
"""

from __future__ import annotations

import os


class Waker:
    """A readable fd that ``wake()`` makes ready and ``drain()`` resets."""

    def __init__(self) -> None:
        self._closed = False
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read_fd = fd
            self._write_fd = fd
            self._eventfd = True
        else:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self._read_fd = read_fd
            self._write_fd = write_fd
            self._eventfd = False

    def fileno(self) -> int:
        return self._read_fd

    def wake(self) -> None:
        # After close the fd number may belong to another file: never write to it.
        if self._closed:
            return
        # A full pipe already means the loop will wake.
        try:
            if self._eventfd:
                os.eventfd_write(self._write_fd, 1)
            else:
                os.write(self._write_fd, b"\0")
        except (OSError, ValueError):
            pass

    def drain(self) -> None:
        try:
            if self._eventfd:
                os.eventfd_read(self._read_fd)
            else:
                while os.read(self._read_fd, 4096):
                    pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._read_fd)
        if self._write_fd != self._read_fd:
            os.close(self._write_fd)
