"""The process half of ``aloop.Loop``: subprocesses, pipes and Unix signals.

A part of ``Loop`` (see ``aloop._core.loopparts``); the pipe and subprocess
transports live in ``aloop._transports``, signal delivery in
``aloop._core.signals``, child watching in ``aloop._core.children``. The
per-loop state (``_signal_state``, ``_child_state``) is declared in
``BaseLoop`` and created on first use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

from aloop._core.children import ChildWatchers
from aloop._core.loopparts import LoopPart
from aloop._core.signals import SignalHandlers, check_signal
from aloop._transports.pipes import ReadPipeTransport, WritePipeTransport
from aloop._transports.subprocess import SubprocessTransport

__all__ = ["ProcessMixin"]

_logger = logging.getLogger("asyncio")

_PIPE = subprocess.PIPE


def _refuse_text_mode(
    universal_newlines: bool, bufsize: int, text: bool | None, encoding: Any, errors: Any
) -> None:
    """asyncio's subprocesses speak bytes, unbuffered: refuse anything else."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


class ProcessMixin(LoopPart):
    """subprocess_exec/shell, connect_read_pipe/write_pipe, add/remove_signal_handler."""

    # -- pipes ---------------------------------------------------------------

    async def connect_read_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[asyncio.ReadTransport, asyncio.BaseProtocol]:
        """Read ``pipe`` (a pipe, FIFO, socket, character device or pty) into a protocol."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = ReadPipeTransport(self, pipe, protocol, waiter)
        await self._await_connected(transport, waiter)
        if self.get_debug():
            _logger.debug("Read pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[asyncio.WriteTransport, asyncio.BaseProtocol]:
        """Write to ``pipe`` through a buffered, flow-controlled transport."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = WritePipeTransport(self, pipe, protocol, waiter)
        await self._await_connected(transport, waiter)
        if self.get_debug():
            _logger.debug("Write pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    @staticmethod
    async def _await_connected(
        transport: asyncio.BaseTransport, waiter: asyncio.Future[None]
    ) -> None:
        try:
            await waiter
        except BaseException:
            transport.close()
            raise

    # -- subprocesses ----------------------------------------------------------

    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], asyncio.SubprocessProtocol],
        program: Any,
        *args: Any,
        stdin: Any = _PIPE,
        stdout: Any = _PIPE,
        stderr: Any = _PIPE,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: Any = None,
        errors: Any = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, asyncio.SubprocessProtocol]:
        """Run ``program`` with ``args`` (no shell) under a subprocess protocol."""
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        _refuse_text_mode(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._start_subprocess(
            protocol, (program, *args), False, stdin, stdout, stderr, bufsize, kwargs
        )
        return transport, protocol

    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], asyncio.SubprocessProtocol],
        cmd: str | bytes,
        *,
        stdin: Any = _PIPE,
        stdout: Any = _PIPE,
        stderr: Any = _PIPE,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: Any = None,
        errors: Any = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, asyncio.SubprocessProtocol]:
        """Run ``cmd`` through the shell under a subprocess protocol."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        _refuse_text_mode(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._start_subprocess(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, kwargs
        )
        return transport, protocol

    async def _start_subprocess(
        self,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        kwargs: dict[str, Any],
    ) -> SubprocessTransport:
        """Start the child, watch for its exit, connect its pipes; kill it if that fails."""
        self._check_closed()
        if self.get_debug():
            # Not the arguments: they may hold secrets, and be long.
            what = "shell command" if shell else "program"
            _logger.debug("run %s %r", what, args if shell else args[0])
        transport = SubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize, **kwargs
        )
        proc = transport.get_extra_info("subprocess")
        self._children().watch(proc, transport._process_exited)
        waiter = self.create_future()
        self.create_task(transport._connect_pipes(waiter))
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # Cancelled or failed: nothing may be left running.
            transport.close()
            await transport._wait()
            raise
        if self.get_debug():
            _logger.info("subprocess started: %r", transport)
        return transport

    def _children(self) -> ChildWatchers:
        children = self._child_state
        if children is None:
            children = self._child_state = ChildWatchers(self)
        return children

    # -- signals ---------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` as a loop callback whenever signal ``sig`` arrives."""
        handlers = self._signal_state
        if handlers is None:
            handlers = self._signal_state = SignalHandlers(self)
        handlers.add(sig, callback, args)

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore ``sig``'s default handler; False if this loop had none for it."""
        handlers = self._signal_state
        if handlers is None:
            check_signal(sig)
            return False
        return handlers.remove(sig)

    # -- closing ---------------------------------------------------------------

    def _close_processes(self) -> None:
        """Called by ``Loop.close()`` before the scheduler releases its fds."""
        same_process = os.getpid() == self._pid
        handlers = self._signal_state
        if handlers is not None:
            if sys.is_finalizing():
                if len(handlers):
                    warnings.warn(
                        f"Closing the loop {self!r} on interpreter shutdown stage, "
                        "skipping signal handlers removal",
                        ResourceWarning,
                        stacklevel=2,
                        source=self,
                    )
                handlers.forget()
            handlers.close()
            self._signal_state = None
        children = self._child_state
        if children is not None:
            children.close(same_process)
            self._child_state = None
