"""blockbuster allowances for aloop: the loop's own legitimately blocking calls.

blockbuster (https://github.com/cbornet/blockbuster) patches blocking
functions and raises ``BlockingError`` when one is called on a thread running
an event loop, unless a frame on the stack matches an allowance (a file-name
suffix and function names). It carries allowances for asyncio's own loop
(``asyncio/base_events.py`` ``subprocess_exec``, ...); aloop makes the same
calls from its own files, so ``allow(bb)`` adds those:

    from blockbuster import blockbuster_ctx
    from aloop.testing.blockbuster import allow

    with blockbuster_ctx() as bb:
        allow(bb)
        ...

Each allowance names the one function that makes the call, nothing wider:
blocking code of the application (a protocol factory, a callback) run from
inside the loop's methods is still reported. The calls are those asyncio's
loop makes on its own thread too, and block only briefly:

- ``os.read`` in ``SubprocessTransport.__init__``: ``subprocess.Popen`` reads
  its exec-error pipe until the child has exec'd (asyncio: ``subprocess_exec``);
- ``os.sendfile`` in ``sendfile.py``'s ``step``, on a non-blocking socket: only
  reading the file may wait, for the disk (asyncio: ``sendfile``,
  ``_sock_sendfile_native_impl``);
- ``os.stat`` of a Unix server's socket file when it is bound, and ``os.stat``
  plus ``os.unlink`` of that file when the server closes (asyncio:
  ``create_unix_server``, ``_stop_serving``);
- ``Lock.acquire`` in ``shutdown_default_executor``: joining the thread that
  shut the executor down, once it has reported done (asyncio: the same; only
  up to 3.12, whose ``Thread.join`` waits on a lock).

Frames of mypyc-compiled functions are not on the Python stack, so an
allowance can only name an interpreted module: each file below must stay out
of ``aloop._purity.COMPILED_MODULES`` (tests/test_blockbuster.py checks).
This module imports nothing of blockbuster; ``bb`` is any object with its
``functions`` mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple, Protocol, TypeVar

__all__ = ["ALLOWANCES", "Allowance", "allow"]


class Allowance(NamedTuple):
    """blockbuster may let ``call`` block under ``function`` of a file ending ``file``."""

    call: str  # a key of BlockBuster.functions
    file: str
    function: str


ALLOWANCES: tuple[Allowance, ...] = (
    Allowance("os.read", "aloop/_transports/subprocess.py", "__init__"),
    Allowance("os.sendfile", "aloop/_transports/sendfile.py", "step"),
    Allowance("os.stat", "aloop/_transports/server.py", "remove_stale_unix_socket"),
    Allowance("os.stat", "aloop/network.py", "_remember_unix_server_socket"),
    Allowance("os.stat", "aloop/network.py", "_forget_unix_server_socket"),
    Allowance("os.unlink", "aloop/network.py", "_forget_unix_server_socket"),
    Allowance("threading.Lock.acquire", "aloop/loop.py", "shutdown_default_executor"),
)
"""Every call aloop itself may make on the loop's thread, with the function making it."""


class _Function(Protocol):
    def can_block_in(self, filename: str, functions: str | Iterable[str]) -> object: ...


class _BlockBuster(Protocol):
    @property
    def functions(self) -> Mapping[str, _Function]: ...


_BB = TypeVar("_BB", bound=_BlockBuster)


def allow(bb: _BB, allowances: Iterable[Allowance] = ALLOWANCES) -> _BB:
    """Let ``bb`` (a ``BlockBuster``) accept aloop's legitimately blocking calls; returns ``bb``.

    A call this blockbuster version does not patch is skipped.
    """
    functions = bb.functions
    for allowance in allowances:
        function = functions.get(allowance.call)
        if function is not None:
            function.can_block_in(allowance.file, {allowance.function})
    return bb
