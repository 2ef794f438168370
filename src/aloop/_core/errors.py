"""The loop's exception handler: asyncio's log format and fallbacks."""

from __future__ import annotations

import logging
import sys
import traceback
from asyncio import base_events
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aloop._core.scheduler import BaseLoop

# 3.12 started running a custom handler in the failing task's context.
_HANDLER_IN_CONTEXT = sys.version_info >= (3, 12)


def _logger() -> logging.Logger:
    # Looked up on each use, not bound at import: asyncio's own tests (and
    # users) patch ``asyncio.base_events.logger`` to watch what a loop logs.
    logger: logging.Logger = base_events.logger  # type: ignore[attr-defined]
    return logger


def default_exception_handler(context: dict[str, Any], current_handle: Any) -> None:
    """Log ``context`` exactly as asyncio's default handler does."""
    message = context.get("message") or "Unhandled exception in event loop"
    exception = context.get("exception")
    exc_info: Any = False
    if exception is not None:
        exc_info = (type(exception), exception, exception.__traceback__)
    if (
        "source_traceback" not in context
        and current_handle is not None
        and current_handle._source_traceback
    ):
        context["handle_traceback"] = current_handle._source_traceback
    lines = [message]
    for key in sorted(context):
        if key in {"message", "exception"}:
            continue
        value = context[key]
        if key == "source_traceback":
            tb = "".join(traceback.format_list(value))
            value = "Object created at (most recent call last):\n" + tb.rstrip()
        elif key == "handle_traceback":
            tb = "".join(traceback.format_list(value))
            value = "Handle created at (most recent call last):\n" + tb.rstrip()
        else:
            value = repr(value)
        lines.append(f"{key}: {value}")
    _logger().error("\n".join(lines), exc_info=exc_info)


def _context_of(context: dict[str, Any]) -> Any:
    """The contextvars.Context the failing task, future or handle ran in."""
    thing = context.get("task")
    if thing is None:
        thing = context.get("future")
    if thing is None:
        thing = context.get("handle")
    if thing is not None and hasattr(thing, "get_context"):
        ctx = thing.get_context()
        if ctx is not None and hasattr(ctx, "run"):
            return ctx
    return None


def call_exception_handler(loop: BaseLoop, context: dict[str, Any]) -> None:
    """Route ``context`` to the custom handler, falling back to the default one."""
    handler = loop._exception_handler
    if handler is None:
        try:
            loop.default_exception_handler(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # A subclass may override default_exception_handler and fail.
            _logger().error("Exception in default exception handler", exc_info=True)
        return
    try:
        ctx = _context_of(context) if _HANDLER_IN_CONTEXT else None
        if ctx is not None:
            ctx.run(handler, loop, context)
        else:
            handler(loop, context)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        try:
            loop.default_exception_handler(
                {
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                }
            )
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            _logger().error(
                "Exception in default exception handler while handling an unexpected "
                "error in custom exception handler",
                exc_info=True,
            )
