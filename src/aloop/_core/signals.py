"""Unix signal handlers that run as loop callbacks, never inside the signal frame.

Python's C-level signal handler writes the signal number to the fd given to
``signal.set_wakeup_fd``: the loop's wakeup pipe (aloop._io.wakeup), which
the loop watches like any other fd. So a signal that arrives while the loop
sleeps in poll wakes it at once, the scheduler hands the numbers it read to
``SignalHandlers.dispatch``, and each handler runs as an ordinary callback.
The Python-level handler installed for the signal does nothing.
"""

from __future__ import annotations

import contextvars
import errno
import logging
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

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, sig: object, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        """Run ``callback(*args)`` on the loop each time ``sig`` arrives."""
        if is_coroutine_like(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        signum = check_signal(sig)
        self._loop._check_closed()
        try:
            # Raises ValueError outside the main thread: checked first, so a loop
            # running in another thread cannot install a handler.
            self._loop._waker.set_signal_fd()
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
            self._release_wakeup_fd()
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
        self._release_wakeup_fd()
        return True

    def close(self) -> None:
        """Remove every handler, restoring the default dispositions."""
        for signum in list(self._handlers):
            self.remove(signum)

    def forget(self) -> None:
        """At interpreter shutdown: drop the handlers without touching the signal module."""
        self._handlers.clear()

    def dispatch(self, signums: bytes) -> None:
        """Queue the handlers of the signals read from the wakeup pipe."""
        for signum in signums:
            entry = self._handlers.get(signum)
            if entry is not None:
                callback, args, context = entry
                self._loop.call_soon(callback, *args, context=context)

    def _release_wakeup_fd(self) -> None:
        # A running loop in the main thread keeps it until its run ends.
        if not self._handlers and not self._loop._signals_claimed:
            _clear_wakeup_fd()
