"""The process half of ``aloop.Loop``: subprocesses, pipes and Unix signals.

A mixin of ``Loop``; the pipe and subprocess transports live in ``aloop._transports``.
"""

from __future__ import annotations

__all__ = ["ProcessMixin"]


class ProcessMixin:
    """subprocess_exec/shell, connect_read_pipe/write_pipe, add/remove_signal_handler."""

    def _close_processes(self) -> None:
        """Called by ``Loop.close()`` before the scheduler releases its fds."""
