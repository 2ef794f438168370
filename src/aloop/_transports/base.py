"""What every aloop transport shares: write-side flow control and protocol calls.

asyncio's write-buffer limits: when the bytes buffered for writing rise above
the high-water mark the protocol's ``pause_writing()`` is called once, and
``resume_writing()`` once they fall to the low-water mark. A failing protocol
callback is reported through the loop's exception handler with asyncio's
messages, never raised into the loop. ``WriteFlowControl`` does this for the
pipe transports; the socket transports' compiled core (``sockcore``) does it
with ``check_write_limits`` and ``call_protocol`` from here.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["DEFAULT_HIGH_WATER", "WriteFlowControl", "call_protocol", "check_write_limits"]

# asyncio's defaults: 64 KiB high, a quarter of that low.
DEFAULT_HIGH_WATER = 64 * 1024


def check_write_limits(high: int | None, low: int | None) -> tuple[int, int]:
    """asyncio's (high, low) write-buffer limits from what the user gave."""
    if high is None:
        high = DEFAULT_HIGH_WATER if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def call_protocol(
    loop: Any, transport: Any, protocol: Any, method: str, failure: str, *args: Any
) -> None:
    """Call ``protocol.method(*args)``; report an exception as ``failure``."""
    try:
        getattr(protocol, method)(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop.call_exception_handler(
            {"message": failure, "exception": exc, "transport": transport, "protocol": protocol}
        )


class WriteFlowControl(asyncio.Transport):
    """Base for transports that buffer writes; subclasses give the buffer size.

    Subclasses set ``self._loop`` and ``self._protocol`` and implement
    ``get_write_buffer_size()``; they call ``_maybe_pause_protocol()`` after
    buffering and ``_maybe_resume_protocol()`` after draining.
    """

    _loop: Any
    _protocol: Any

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        self._protocol_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        call_protocol(
            self._loop, self, self._protocol, "pause_writing", "protocol.pause_writing() failed"
        )

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            call_protocol(
                self._loop,
                self,
                self._protocol,
                "resume_writing",
                "protocol.resume_writing() failed",
            )

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water, self._low_water = check_write_limits(high, low)
        self._maybe_pause_protocol()

    def get_write_buffer_size(self) -> int:
        raise NotImplementedError  # abstract: every concrete transport defines it
