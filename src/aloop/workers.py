"""Gunicorn worker classes and a granian loop that run on aloop.

    gunicorn -k aloop.workers.UvicornWorker app:app      # ASGI (uvicorn-worker)
    gunicorn -k aloop.workers.AiohttpWorker app:app      # aiohttp.web
    gunicorn -k egg:aloop#uvicorn app:app                # the same, by entry point
    gunicorn -k egg:aloop#aiohttp app:app

    aloop.workers.register_granian()                     # then Granian(..., loop="aloop")

The worker classes are built on first access, so importing this module (or
aloop) needs neither gunicorn, uvicorn-worker, aiohttp nor granian. Each
worker creates its loop with ``aloop.new_event_loop`` and never touches the
global event loop policy (deprecated from Python 3.14).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aloop.loop import Loop
from aloop.runner import new_event_loop

__all__ = ["GRANIAN_LOOP", "AiohttpWorker", "UvicornWorker", "granian_loop", "register_granian"]

if TYPE_CHECKING:
    # Built on first access by __getattr__ below.
    UvicornWorker: type[Any]
    """uvicorn-worker's ``UvicornWorker`` on an aloop loop (ASGI apps; needs uvicorn-worker)."""
    AiohttpWorker: type[Any]
    """aiohttp's ``GunicornWebWorker`` on an aloop loop (``aiohttp.web`` apps)."""

GRANIAN_LOOP = "aloop"
"""The name ``register_granian()`` gives aloop in granian's loop registry."""


def _uvicorn_worker() -> type[Any]:
    from uvicorn_worker import UvicornWorker as Base  # type: ignore[import-untyped]

    class UvicornWorker(Base):  # type: ignore[misc]
        """uvicorn-worker's ``UvicornWorker`` on an aloop loop.

        The base runs ``asyncio.run(..., loop_factory=config.get_loop_factory())``;
        uvicorn resolves a ``module:attribute`` loop to that factory itself.
        """

        CONFIG_KWARGS: dict[str, Any] = {**Base.CONFIG_KWARGS, "loop": "aloop:new_event_loop"}

    return UvicornWorker


def _aiohttp_worker() -> type[Any]:
    from aiohttp.worker import GunicornWebWorker
    from gunicorn.workers.base import Worker  # type: ignore[import-untyped]

    class AiohttpWorker(GunicornWebWorker):
        """aiohttp's ``GunicornWebWorker`` on an aloop loop."""

        def init_process(self) -> None:
            # Replaces aiohttp's init_process, which closes
            # asyncio.get_event_loop() (deprecated without a loop up to 3.13,
            # an error from 3.14) and creates the loop through the policy.
            self.loop = new_event_loop()
            asyncio.set_event_loop(self.loop)
            Worker.init_process(self)

    return AiohttpWorker


_BUILDERS: dict[str, Callable[[], type[Any]]] = {
    "UvicornWorker": _uvicorn_worker,
    "AiohttpWorker": _aiohttp_worker,
}


def __getattr__(name: str) -> type[Any]:
    # Built once, on first use, and kept: gunicorn looks the class up by name.
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(f"module 'aloop.workers' has no attribute {name!r}")
    cls = builder()
    cls.__qualname__ = name
    globals()[name] = cls
    return cls


def __dir__() -> list[str]:
    return sorted({*globals(), *_BUILDERS})


def granian_loop() -> Loop:
    """A new aloop loop, set as the thread's current loop (granian's builders do)."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def register_granian(name: str = GRANIAN_LOOP) -> str:
    """Add aloop to granian's loop registry as ``name``; returns the name.

    Then ``Granian(target, ..., loop="aloop").serve()`` runs its workers on
    aloop. Call it at the top level of the script that starts granian: a
    worker process started by ``spawn`` re-imports that script, and so
    registers aloop again before it looks the loop up.
    """
    from granian import loops

    loops.register(name)(granian_loop)
    return name
