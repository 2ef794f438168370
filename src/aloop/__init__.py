"""aloop: a drop-in asyncio event loop written in typed Python, compiled with mypyc.

aloop.run(main())
asyncio.run(main(), loop_factory=aloop.new_event_loop)   # Python 3.12+
with asyncio.Runner(loop_factory=aloop.new_event_loop) as runner: ...

``aloop.EventLoopPolicy`` and ``aloop.install()`` exist while asyncio has
event loop policies (up to Python 3.15; deprecated from 3.14).

PYTEST_DONT_REWRITE: pytest marks every top-level module of a distribution
with a pytest plugin for assertion rewriting, and warns when one was imported
before it started (a sitecustomize installing aloop); aloop has no test
assertions to rewrite.
"""

from typing import Any

from aloop import _purity

_purity.install()

from aloop._core import lifetime  # noqa: E402
from aloop._core.clock import TimeHold, VirtualClock  # noqa: E402
from aloop._core.deadlock import VirtualTimeDeadlock  # noqa: E402
from aloop._core.hooks import HOOKS, Instrument  # noqa: E402
from aloop.loop import Loop  # noqa: E402
from aloop.runner import new_event_loop, run  # noqa: E402

COMPILED: bool = _purity.is_compiled()
"""True when the hot modules run as mypyc-compiled C, False when interpreted."""
if COMPILED:
    lifetime.keep_alive(_purity.COMPILED_MODULES)

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "HOOKS",
    "Instrument",
    "Loop",
    "TimeHold",
    "VirtualClock",
    "VirtualTimeDeadlock",
    "new_event_loop",
    "run",
]


def __getattr__(name: str) -> Any:
    if name == "Monitor":
        # The monitor's modules (threads, sockets, json) load only when asked.
        from aloop.tooling.monitor import Monitor

        return Monitor
    # The policy names are resolved on use (see aloop.policy): no deprecated
    # asyncio name is touched at import.
    from aloop.policy import NAMES, resolve

    if name in NAMES:
        return resolve(name)
    raise AttributeError(f"module 'aloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    from aloop.policy import NAMES

    return sorted([*globals(), *NAMES, "Monitor"])
