"""Debug-mode checks and reports, as asyncio makes them (cold paths only)."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import traceback
import warnings
from asyncio import coroutines, format_helpers
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def is_coroutine_like(callback: Any) -> bool:
    """A coroutine, a coroutine function, or one marked as such for asyncio.

    ``asyncio.iscoroutinefunction`` says the same but is deprecated from
    Python 3.14; the ``_is_coroutine`` marker is what it checks beyond
    ``inspect``.
    """
    return (
        coroutines.iscoroutine(callback)
        or inspect.iscoroutinefunction(callback)
        or getattr(callback, "_is_coroutine", None) is getattr(coroutines, "_is_coroutine", ())
    )


def check_callback(callback: Any, method: str) -> None:
    """asyncio's debug-mode refusal of coroutines and non-callables."""
    if is_coroutine_like(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


def check_thread(loop_thread_id: int | None) -> None:
    """Refuse a non-thread-safe call made from outside the loop's thread."""
    if loop_thread_id is None:
        return
    if threading.get_ident() != loop_thread_id:
        raise RuntimeError(
            "Non-thread-safe operation invoked on an event loop other than the current one"
        )


def capture_stack() -> traceback.StackSummary:
    """The caller's stack, starting at the first frame outside aloop.

    Compiled and interpreted aloop differ in how many of its own frames sit
    on the stack; skipping all of them gives both the same traceback.
    """
    frame = sys._getframe(0)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return format_helpers.extract_stack(frame)


def format_handle(handle: Any) -> str:
    """How a slow callback is named: the task for a task step, else the handle."""
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return str(handle)


def trim_own_frames(stack: traceback.StackSummary) -> None:
    """Drop trailing frames that belong to aloop (interpreted mode has some)."""
    while stack and stack[-1].filename.startswith(_PACKAGE_DIR):
        del stack[-1]


def warn_late_asyncgen(loop: Any, agen: Any) -> None:
    warnings.warn(
        f"asynchronous generator {agen!r} was scheduled after loop.shutdown_asyncgens() call",
        ResourceWarning,
        stacklevel=2,
        source=loop,
    )
