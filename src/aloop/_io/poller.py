"""Readiness polling on epoll directly, or on poll(2) where epoll does not exist.

The stdlib loop goes through ``selectors``, which looks every event's
``SelectorKey`` up and builds a list of pairs in Python on top of the system
call. The loop keeps its own fd table, so all it needs from the backend is
(fd, mask) pairs: that is what both ``select.epoll`` and ``select.poll``
return natively.
"""

from __future__ import annotations

import select
from typing import Final

READ: Final = 0x001  # EPOLLIN == POLLIN
WRITE: Final = 0x004  # EPOLLOUT == POLLOUT
# Errors and hang-ups wake both directions, so the callback sees the error
# on its next recv/send instead of never hearing about it.
_ERR: Final = 0x008 | 0x010  # EPOLLERR|EPOLLHUP == POLLERR|POLLHUP
READ_EVENTS: Final = READ | _ERR
WRITE_EVENTS: Final = WRITE | _ERR

# Longest single wait: asyncio's cap, so a clock change cannot hide a timer for long.
MAX_TIMEOUT: Final = 24.0 * 3600.0

HAVE_EPOLL: Final = hasattr(select, "epoll")


class Poller:
    """Register fds for READ/WRITE interest and wait for readiness."""

    def __init__(self, backend: str | None = None) -> None:
        if backend is None:
            backend = "epoll" if HAVE_EPOLL else "poll"
        if backend not in ("epoll", "poll"):
            raise ValueError(f"unknown I/O backend {backend!r} (expected 'epoll' or 'poll')")
        use_epoll = backend == "epoll"
        self._epoll: select.epoll | None = select.epoll() if use_epoll else None
        self._poll: select.poll | None = None if use_epoll else select.poll()
        #: "epoll" or "poll" (``python -m aloop`` reports it).
        self.backend = backend

    def register(self, fd: int, mask: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, mask)
        else:
            assert self._poll is not None
            self._poll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        if self._epoll is not None:
            self._epoll.modify(fd, mask)
        else:
            assert self._poll is not None
            self._poll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        """Forget ``fd``; an fd the kernel already dropped (closed) is ignored."""
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._poll is not None
                self._poll.unregister(fd)
        except (KeyError, OSError, ValueError):
            pass

    def poll(self, timeout: float, most: int) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (negative: forever) for ready fds.

        ``most``: how many events epoll may return, the number of registered
        fds (as selectors asks). Without it, epoll.poll allocates room for
        1023 events (12 KiB, from malloc) on every call.
        """
        if timeout > MAX_TIMEOUT:
            timeout = MAX_TIMEOUT
        if self._epoll is not None:
            return self._epoll.poll(timeout, most)
        assert self._poll is not None
        if timeout < 0:
            return self._poll.poll(None)
        # poll(2) takes milliseconds; round up so a timer is never woken early.
        return self._poll.poll(int(timeout * 1000.0 + 0.999))

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        self._poll = None
