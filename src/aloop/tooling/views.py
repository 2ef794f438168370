"""What ``python -m aloop ps``, ``pstree`` and ``top`` draw (with rich) from a monitor's reply."""

from __future__ import annotations

import os
from typing import Any

from aloop.tooling.stats import busy_fraction

__all__ = ["busy_share", "tasks_table", "tasks_tree"]


def busy_share(reply: dict[str, Any], previous: dict[str, Any] | None = None) -> float:
    """The share of time the loop ran callbacks rather than waited: since the
    monitor started, or between ``previous`` and ``reply``."""
    busy, idle = reply["stats"]["busy"], reply["stats"]["idle"]
    if previous is not None:
        busy -= previous["stats"]["busy"]
        idle -= previous["stats"]["idle"]
    return busy_fraction(busy, idle)


def tasks_table(reply: dict[str, Any], previous: dict[str, Any] | None = None) -> Any:
    """The ``ps`` table; ``previous`` (an earlier reply): busy share since then."""
    from rich.markup import escape
    from rich.table import Table

    stats = reply["stats"]
    running = reply.get("running")
    since = "last refresh" if previous is not None else "the monitor started"
    title = (
        f"pid {reply['pid']}: {len(reply['tasks'])} tasks, {stats['callbacks']} callbacks, "
        f"loop busy {busy_share(reply, previous):.0%} since {since}"
    )
    if running and running["for"] >= 0.1:
        title += f"  [bold red]BLOCKED {running['for']:.1f} s by {escape(running['by'])}[/]"
    table = Table(title=title)
    for column in ("task", "state", "awaits", "steps", "cpu ms", "age s", "parent"):
        table.add_column(column, overflow="fold")
    counted = reply.get("counted", True)
    if not counted:
        table.caption = "steps and cpu ms: not counted (start the monitor with detail=True)"
    for row in reply["tasks"]:
        coro = row.get("coro", "")
        table.add_row(
            escape(row["name"]) + (f" [dim]{escape(coro)}[/]" if coro else ""),
            row["state"],
            escape(row["awaiting"]),
            str(row["steps"]) if counted else "-",
            f"{row['cpu'] * 1000:.1f}" if counted else "-",
            f"{row['age']:.1f}",
            escape(row["parent"] or ""),
        )
    return table


def _user_frame(stack: list[str]) -> str:
    """The innermost frame outside asyncio itself: where the task's own code waits."""
    for frame in reversed(stack):
        if f"{os.sep}asyncio{os.sep}" not in frame:
            return frame
    return stack[-1] if stack else ""


def tasks_tree(reply: dict[str, Any]) -> Any:
    from rich.tree import Tree

    rows = {row["name"]: row for row in reply["tasks"]}
    root = Tree(f"pid {reply['pid']}")
    nodes: dict[str, Any] = {}

    from rich.markup import escape

    def add(name: str, parent: Any) -> None:
        row = rows[name]
        where = _user_frame(row["stack"])
        # Names, states and reprs are data, not rich markup ("[waiting]").
        state = escape("[" + row["state"] + "]")
        coro = row.get("coro", "")
        label = f"[bold]{escape(name)}[/] {escape(coro) + ' ' if coro else ''}{state} awaits "
        label += escape(row["awaiting"])
        nodes[name] = parent.add(f"{label}\n[dim]{escape(where)}[/]" if where else label)
        for child in row["children"]:
            if child in rows:
                add(child, nodes[name])

    for name, row in rows.items():
        if row["parent"] not in rows:
            add(name, root)
    return root
