"""See every task of an aloop loop: state, parent, children, what it awaits, where.

    tracker = aloop.inspect.track(loop)        # before the tasks of interest start
    rows = aloop.inspect.snapshot(loop)        # a Snapshot: list of TaskInfo
    print(aloop.inspect.format_tree(rows))
    aloop.inspect.untrack(loop)                # hooks off again

In a notebook, ``aloop.inspect.snapshot()`` (the running loop's tasks) as a
cell's last expression renders as the task tree (``Snapshot._repr_html_``).
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

from aloop._core.taskinfo import task_outcome
from aloop.tooling import tasks as _tasks
from aloop.tooling.tasks import (
    TaskInfo,
    TaskRecord,
    TaskTracker,
    format_tree,
    track,
    tree_order,
    untrack,
)

__all__ = [
    "Snapshot",
    "TaskInfo",
    "TaskRecord",
    "TaskTracker",
    "format_tree",
    "snapshot",
    "task_outcome",
    "track",
    "untrack",
]


class Snapshot(list[TaskInfo]):
    """The rows of ``snapshot()``: a list of ``TaskInfo`` that renders as a tree in Jupyter."""

    def _repr_html_(self) -> str:
        """The task tree as an HTML table, each task indented under its parent."""
        head = "".join(f"<th>{title}</th>" for title in _COLUMNS)
        body = "".join(_html_row(row, depth) for row, depth in tree_order(self))
        return (
            f'<table class="aloop-tasks"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )


_COLUMNS = ("task", "state", "awaits", "steps", "age (s)", "coroutine")


def snapshot(loop: Any = None, *, include_done: bool = False) -> Snapshot:
    """Every task of ``loop`` (default: the running loop) now, as ``TaskInfo`` rows."""
    if loop is None:
        loop = asyncio.get_running_loop()
    return Snapshot(_tasks.snapshot(loop, include_done=include_done))


def _html_row(row: TaskInfo, depth: int) -> str:
    awaits = row.awaiting if row.state == _tasks.WAITING else ""
    # The outermost frame names the task's coroutine and where it is suspended.
    where = row.stack[0] if row.stack else ""
    indent = f"padding-left:{0.5 + 1.5 * depth}em"
    cells = (
        f'<td style="{indent};text-align:left">{html.escape(row.name)}</td>',
        f"<td>{html.escape(row.state)}</td>",
        f'<td style="text-align:left">{html.escape(awaits)}</td>',
        f"<td>{row.steps}</td>",
        f"<td>{row.age:.3f}</td>",
        f'<td style="text-align:left"><code>{html.escape(where)}</code></td>',
    )
    return f"<tr>{''.join(cells)}</tr>"
