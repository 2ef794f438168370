"""The fd table behind ``add_reader``/``add_writer``: fd -> reader and writer handles."""

from __future__ import annotations

from typing import Any

from aloop._core.handles import Handle
from aloop._io.poller import READ, READ_EVENTS, WRITE, WRITE_EVENTS, Poller


def fileobj_to_fd(fileobj: Any) -> int:
    """An fd from an int or an object with ``fileno()``, with selectors' errors."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def fileno_or_none(fileobj: Any) -> int | None:
    """The fd ``fileobj`` names now, or None when it names none (a closed socket: -1)."""
    try:
        fd = fileobj_to_fd(fileobj)
    except ValueError:
        return None
    return fd


class FdEntry:
    """Interest in one fd: at most one reader and one writer.

    ``fileobj`` is the object last registered for the fd (an int or an object
    with ``fileno()``): a socket closed since then (``fileno()`` is -1) is
    still found by it, as ``selectors`` finds it.
    """

    __slots__ = ("fileobj", "mask", "reader", "writer")

    def __init__(self, fileobj: Any) -> None:
        self.reader: Handle | None = None
        self.writer: Handle | None = None
        self.mask = 0
        self.fileobj: Any = fileobj


# fds below this are also found by list index (see FdTable._by_fd): the list
# costs 8 bytes per fd number up to the highest one registered.
INDEXED_FDS = 1 << 16


class FdTable:
    """Keeps the poller's interest set in step with the registered handles."""

    def __init__(self, poller: Poller, indexed_fds: int = INDEXED_FDS) -> None:
        self._poller = poller
        self._indexed_fds = indexed_fds
        self.entries: dict[int, FdEntry] = {}
        # The same entries by fd, for dispatch: a list index compiles to a
        # bounds check and a load, where a dict lookup boxes and hashes the fd.
        self._by_fd: list[FdEntry | None] = []

    def __len__(self) -> int:
        return len(self.entries)

    def fd_of(self, fileobj: Any) -> int:
        """The fd of ``fileobj``, or of its registration if it no longer has one.

        Raises selectors' ValueError for an object that names no fd and was
        never registered.
        """
        fd = fileno_or_none(fileobj)
        if fd is not None:
            return fd
        for registered, entry in self.entries.items():
            if entry.fileobj is fileobj:
                return registered
        return fileobj_to_fd(fileobj)  # raises the error

    def add(self, fd: int, handle: Handle, write: bool, fileobj: Any) -> None:
        """Make ``handle`` the fd's reader (or writer), cancelling the one it replaces."""
        entry = self.entries.get(fd)
        new = entry is None
        if entry is None:
            entry = FdEntry(fileobj)
        old = entry.writer if write else entry.reader
        mask = entry.mask | (WRITE if write else READ)
        self._set_mask(fd, entry.mask, mask)
        # Only once the kernel accepted the fd (a regular file is refused).
        if new:
            self.entries[fd] = entry
            self._index(fd, entry)
        entry.mask = mask
        entry.fileobj = fileobj
        if write:
            entry.writer = handle
        else:
            entry.reader = handle
        if old is not None:
            old.cancel()

    def remove(self, fd: int, write: bool) -> bool:
        """Drop the fd's reader (or writer); True if there was one."""
        entry = self.entries.get(fd)
        if entry is None:
            return False
        handle = entry.writer if write else entry.reader
        mask = entry.mask & ~(WRITE if write else READ)
        if mask:
            self._set_mask(fd, entry.mask, mask)
            entry.mask = mask
        else:
            del self.entries[fd]
            self._index(fd, None)
            self._poller.unregister(fd)
        if write:
            entry.writer = None
        else:
            entry.reader = None
        if handle is None:
            return False
        handle.cancel()
        return True

    def _index(self, fd: int, entry: FdEntry | None) -> None:
        by_fd = self._by_fd
        if fd >= self._indexed_fds:
            return
        if fd >= len(by_fd):
            if entry is None:
                return
            by_fd.extend([None] * (fd + 1 - len(by_fd)))
        by_fd[fd] = entry

    def _set_mask(self, fd: int, old: int, new: int) -> None:
        if old == new:
            return
        if not old:
            self._poller.register(fd, new)
            return
        try:
            self._poller.modify(fd, new)
        except FileNotFoundError:
            # The fd was closed and its number reused behind our back; the
            # kernel dropped the old registration, so make a new one.
            self._poller.register(fd, new)

    def dispatch(self, fd: int, events: int, ready: list[Handle | None]) -> None:
        """Queue the handles that ``events`` on ``fd`` make runnable."""
        by_fd = self._by_fd
        entry = by_fd[fd] if fd < len(by_fd) else self.entries.get(fd)
        if entry is None:
            return
        if events & READ_EVENTS:
            reader = entry.reader
            if reader is not None:
                if reader._cancelled:
                    self.remove(fd, False)
                else:
                    ready.append(reader)
        if events & WRITE_EVENTS:
            writer = entry.writer
            if writer is not None:
                if writer._cancelled:
                    self.remove(fd, True)
                else:
                    ready.append(writer)

    def clear(self) -> None:
        for fd, entry in self.entries.items():
            self._poller.unregister(fd)
            for handle in (entry.reader, entry.writer):
                if handle is not None:
                    handle.cancel()
        self.entries.clear()
        self._by_fd.clear()
