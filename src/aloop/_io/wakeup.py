"""The loop's wakeup pipe: how another thread, or a signal, interrupts a sleeping poll.

Another thread writes a zero byte (``wake``). CPython's C-level signal
handler writes the signal's number to the fd given to
``signal.set_wakeup_fd``: the loop hands it this pipe while it runs in the
main thread (``claim_signals``) and whenever it has ``add_signal_handler``
handlers. So any signal with a Python-level handler (SIGINT's
``KeyboardInterrupt``, ``asyncio.Runner``'s) wakes the poll, and ``drain``
returns the signal numbers for the loop to act on.

A pipe, not an eventfd: the signal module writes single bytes, which an
eventfd refuses.
"""

from __future__ import annotations

import os
import signal


class Waker:
    """A readable fd that ``wake()`` or a signal makes ready and ``drain()`` resets."""

    def __init__(self) -> None:
        self._closed = False
        # A wake-up byte is in the pipe (or about to be): other threads need not
        # add theirs. Keeps the pipe from filling with them, which would make
        # the signal module's write fail and lose that signal's number.
        self._pending = False
        read_fd, write_fd = os.pipe()  # not inherited by children (PEP 446)
        # Neither a thread nor the C signal handler may block on a full pipe.
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd = read_fd
        self._write_fd = write_fd

    def fileno(self) -> int:
        return self._read_fd

    def wake(self) -> None:
        # After close the fd number may belong to another file: never write to it.
        if self._closed or self._pending:
            return
        self._pending = True
        # A full pipe already means the loop will wake.
        try:
            os.write(self._write_fd, b"\0")
        except (OSError, ValueError):
            pass

    def drain(self) -> bytes:
        """Empty the pipe; return the signal numbers written into it (often none)."""
        data = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 4096)
            except (BlockingIOError, InterruptedError):
                break
            data += chunk
            if len(chunk) < 4096:
                break
        # Cleared after reading: cleared before, a wake() between the two would
        # leave the flag set and its byte consumed, and later wake-ups would be
        # skipped while the loop sleeps. A wake() that saw the flag set here
        # queued its handle first, so this iteration runs it; at worst a byte
        # written just before the clear makes one spurious wake-up.
        self._pending = False
        return data.replace(b"\0", b"")

    def set_signal_fd(self) -> None:
        """Become the process's signal wakeup fd (``ValueError`` outside the main thread)."""
        signal.set_wakeup_fd(self._write_fd)

    def claim_signals(self) -> bool:
        """Become the signal wakeup fd unless another one is set; False if not.

        Outside the main thread of the main interpreter nothing happens.
        """
        try:
            previous = signal.set_wakeup_fd(self._write_fd)
        except ValueError:
            return False
        if previous not in (-1, self._write_fd):
            signal.set_wakeup_fd(previous)  # somebody else's: theirs to keep
            return False
        return True

    def release_signals(self) -> None:
        """Stop being the signal wakeup fd, if this pipe still is."""
        try:
            previous = signal.set_wakeup_fd(-1)
        except ValueError:
            return
        if previous not in (-1, self._write_fd):
            signal.set_wakeup_fd(previous)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._read_fd)
        os.close(self._write_fd)
