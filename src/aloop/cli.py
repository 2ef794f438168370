"""The command-line views of ``python -m aloop`` (rendering with rich)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from aloop.tooling.monitor import request

__all__ = ["main"]


def _rich() -> Any:
    try:
        import rich
    except ImportError:
        raise SystemExit("python -m aloop needs rich: pip install 'aloop[monitor]'") from None
    import rich.console

    return rich.console.Console()


def tasks_table(reply: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    stats = reply["stats"]
    running = reply.get("running")
    title = (
        f"pid {reply['pid']}: {len(reply['tasks'])} tasks, {stats['callbacks']} callbacks, "
        f"loop busy {stats['busy'] / max(stats['busy'] + stats['idle'], 1e-9):.0%}"
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
        table.add_row(
            escape(row["name"]),
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
        label = f"[bold]{escape(name)}[/] {state} awaits "
        label += escape(row["awaiting"])
        nodes[name] = parent.add(f"{label}\n[dim]{escape(where)}[/]" if where else label)
        for child in row["children"]:
            if child in rows:
                add(child, nodes[name])

    for name, row in rows.items():
        if row["parent"] not in rows:
            add(name, root)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ps", "pstree", "top"):
        cmd = sub.add_parser(name)
        cmd.add_argument("pid", type=int)
        if name == "top":
            cmd.add_argument("--interval", type=float, default=1.0)
            cmd.add_argument("--iterations", type=int, default=0, help="stop after N (0: never)")
    cancel = sub.add_parser("cancel")
    cancel.add_argument("pid", type=int)
    cancel.add_argument("task")
    web = sub.add_parser("web")
    web.add_argument("pid", type=int)
    web.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (0: any free port)")
    trace = sub.add_parser("trace")
    trace.add_argument("pid", type=int)
    trace.add_argument("--seconds", type=float, default=5.0)
    trace.add_argument("-o", "--output", default="aloop-trace.json")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, RuntimeError, ConnectionError) as exc:
        print(f"aloop: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "cancel":
        print(request(args.pid, {"cmd": "cancel", "task": args.task})["ok"])
        return 0
    if args.command == "web":
        from aloop.tooling.web import serve

        serve(args.pid, args.port)
        return 0
    if args.command == "trace":
        data = request(args.pid, {"cmd": "trace", "seconds": args.seconds})
        with open(args.output, "w", encoding="utf-8") as out:
            json.dump(data, out)
        print(f"wrote {len(data['traceEvents'])} events to {args.output}")
        return 0
    console = _rich()
    if args.command == "ps":
        console.print(tasks_table(request(args.pid, {"cmd": "ps"})))
    elif args.command == "pstree":
        console.print(tasks_tree(request(args.pid, {"cmd": "ps"})))
    else:
        _top(console, args)
    return 0


def _top(console: Any, args: argparse.Namespace) -> None:
    from rich.live import Live

    shown = 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            live.update(tasks_table(request(args.pid, {"cmd": "ps"})), refresh=True)
            shown += 1
            if args.iterations and shown >= args.iterations:
                return
            time.sleep(args.interval)
