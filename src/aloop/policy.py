"""aloop's event loop policy, only where asyncio still has a policy system.

asyncio deprecates policies in Python 3.14 and removes them in 3.16. The
policy class is therefore built on first request (``aloop.EventLoopPolicy``
goes through the package's ``__getattr__``): importing aloop touches no
deprecated asyncio name, on 3.14-3.15 the request itself is what warns, and
on 3.16 the names do not exist. ``aloop.run`` and
``loop_factory=aloop.new_event_loop`` work on every version.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from typing import Any

from aloop.loop import Loop

#: The names resolved here, for ``aloop.__getattr__`` and ``dir(aloop)``.
NAMES = ("EventLoopPolicy", "install")

_REMOVED = (
    "asyncio's event loop policies were removed in Python 3.16; "
    "use aloop.run(main()) or asyncio.run(main(), loop_factory=aloop.new_event_loop)"
)

_policy_class: type[Any] | None = None


def _stdlib_default_policy() -> type[Any] | None:
    """asyncio's default policy class, fetched without its deprecation warning."""
    if sys.version_info < (3, 14):
        return asyncio.DefaultEventLoopPolicy
    from asyncio import unix_events

    base: type[Any] | None = getattr(unix_events, "_DefaultEventLoopPolicy", None)
    return base


def _warn_deprecated(name: str, stacklevel: int) -> None:
    """Warn as asyncio does for its own policy names on 3.14-3.15.

    ``stacklevel`` counts from the caller of this function, so the warning
    names the user's line.
    """
    if sys.version_info >= (3, 14):
        warnings.warn(
            f"'aloop.{name}' is deprecated and slated for removal in Python 3.16; "
            "use aloop.run(main()) or asyncio.run(main(), loop_factory=aloop.new_event_loop)",
            DeprecationWarning,
            stacklevel=stacklevel + 1,
        )


def policy_class() -> type[Any]:
    """``aloop.EventLoopPolicy``: asyncio's default policy, making aloop loops."""
    global _policy_class
    if _policy_class is None:
        base = _stdlib_default_policy()
        if base is None:
            raise AttributeError(f"module 'aloop' has no attribute 'EventLoopPolicy' ({_REMOVED})")

        class EventLoopPolicy(base):  # type: ignore[misc,valid-type]
            """asyncio's default event loop policy, making aloop loops."""

            def new_event_loop(self) -> Loop:
                return Loop()

        EventLoopPolicy.__module__ = "aloop"
        EventLoopPolicy.__qualname__ = "EventLoopPolicy"
        _policy_class = EventLoopPolicy
    return _policy_class


def install() -> None:
    """Make aloop the loop of ``asyncio.run``, ``asyncio.new_event_loop`` and the rest.

    Sets ``aloop.EventLoopPolicy()`` as asyncio's policy, as ``uvloop.install()``
    does; deprecated with policies themselves on 3.14-3.15.
    """
    _warn_deprecated("install", 2)
    policy = policy_class()()
    with warnings.catch_warnings():
        # Already warned above, in the caller's name.
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(policy)


def resolve(name: str) -> Any:
    """``aloop.EventLoopPolicy`` or ``aloop.install`` for ``aloop.__getattr__``.

    The class warns where asyncio's own policy names do; ``install`` warns
    when called.
    """
    if _stdlib_default_policy() is None:
        raise AttributeError(f"module 'aloop' has no attribute {name!r} ({_REMOVED})")
    if name == "install":
        return install
    # Three frames up: resolve <- aloop.__getattr__ <- the user's line.
    _warn_deprecated(name, 3)
    return policy_class()
