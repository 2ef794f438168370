"""Unix signal handlers that run as loop callbacks, never inside the signal frame.

Python's C-level signal handler writes the signal number to the fd given to
``signal.set_wakeup_fd``. The loop watches the read end of that pipe like
any other fd, so a signal that arrives while the loop sleeps in poll wakes
it at once, and the handler runs as an ordinary callback. The Python-level
handler installed for the signal does nothing: in compiled mode it may run
late (no bytecode runs between compiled callbacks), and nothing depends on it.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aloop._core.debug import is_coroutine_like

if TYPE_CHECKING:
    from aloop._core.scheduler import BaseLoop

__all__ = ["SignalHandlers", "check_signal"]

_logger = logging.getLogger("asyncio")


def _noop_handler(signum: int, frame: object) -> None:
    """The Python-level handler: the wakeup fd carries the signal instead."""


def check_signal(sig: object) -> int:
    """asyncio's validation: ``TypeError`` if not an int, ``ValueError`` if not a signal."""
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")
    return sig


def _default_disposition(sig: int) -> Any:
    # SIGINT's default in Python raises KeyboardInterrupt; the others go to the OS default.
    return signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL


def _clear_wakeup_fd() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError) as exc:
        _logger.info("set_wakeup_fd(-1) failed: %s", exc)


class SignalHandlers:
    """The signal handlers of one loop, and the wakeup pipe that delivers them."""

    def __init__(self, loop: BaseLoop) -> None:
        self._loop = loop
        self._handlers: dict[int, tuple[Callable[..., object], tuple[Any, ...], Any]] = {}
        self._read_fd = -1
        self._write_fd = -1

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, sig: object, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        """Run ``callback(*args)`` on the loop each time ``sig`` arrives."""
        if is_coroutine_like(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        signum = check_signal(sig)
        self._loop._check_closed()
        self._open_pipe()
        try:
            # Raises ValueError outside the main thread: checked first, so a loop
            # running in another thread cannot install a handler.
            signal.set_wakeup_fd(self._write_fd)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc)) from None
        # The handler runs in the context current when it was added, as asyncio's Handle does.
        self._handlers[signum] = (callback, args, contextvars.copy_context())
        try:
            signal.signal(signum, _noop_handler)
            # SA_RESTART: system calls in other threads are not interrupted by it.
            signal.siginterrupt(signum, False)
        except OSError as exc:
            del self._handlers[signum]
            if not self._handlers:
                _clear_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {signum} cannot be caught") from None
            raise

    def remove(self, sig: object) -> bool:
        """Restore ``sig``'s default disposition; False if it had no handler here."""
        signum = check_signal(sig)
        if self._handlers.pop(signum, None) is None:
            return False
        try:
            signal.signal(signum, _default_disposition(signum))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {signum} cannot be caught") from None
            raise
        if not self._handlers:
            _clear_wakeup_fd()
        return True

    def close(self, same_process: bool = True) -> None:
        """Remove every handler (defaults restored) and release the pipe.

        ``same_process`` False: the loop was inherited through fork(); its poller
        is the parent's, so the pipe is closed without unregistering it.
        """
        for signum in list(self._handlers):
            self.remove(signum)
        if self._read_fd >= 0:
            if same_process:
                self._loop._remove_reader(self._read_fd)
            os.close(self._read_fd)
            os.close(self._write_fd)
            self._read_fd = self._write_fd = -1

    def forget(self) -> None:
        """At interpreter shutdown: drop the handlers without touching the signal module."""
        self._handlers.clear()

    def _open_pipe(self) -> None:
        if self._read_fd >= 0:
            return
        read_fd, write_fd = os.pipe()  # not inherited by children (PEP 446)
        # The C handler must never block on a full pipe; the loop reads until empty.
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read_fd, self._write_fd = read_fd, write_fd
        self._loop._add_reader(read_fd, self._drain)

    def _drain(self) -> None:
        """Read the signal numbers written by the C handler; queue their handlers."""
        while True:
            try:
                data = os.read(self._read_fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                entry = self._handlers.get(signum)
                if entry is not None:
                    callback, args, context = entry
                    self._loop.call_soon(callback, *args, context=context)
