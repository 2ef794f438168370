"""``python -m aloop``: its commands and their arguments (the views are in ``tooling/views.py``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from aloop.tooling.monitor import request
from aloop.tooling.views import tasks_table, tasks_tree

__all__ = ["main"]


def _rich() -> Any:
    try:
        import rich
    except ImportError:
        raise SystemExit("python -m aloop needs rich: pip install 'aloop[monitor]'") from None
    import rich.console

    return rich.console.Console()


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
    """Redraw the table in place on a terminal; elsewhere (a pipe, a file, a
    log) print one plain snapshot per interval, each after a time stamp."""
    shown = 0
    previous: dict[str, Any] | None = None
    live: Any = None
    if console.is_terminal:
        from rich.live import Live

        live = Live(console=console, auto_refresh=False)
        live.start()
    try:
        while True:
            reply = request(args.pid, {"cmd": "ps"})
            table = tasks_table(reply, previous)
            previous = reply
            if live is not None:
                live.update(table, refresh=True)
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(reply["time"]))
                console.print(f"--- {stamp}", markup=False, highlight=False)
                console.print(table)
            shown += 1
            if args.iterations and shown >= args.iterations:
                return
            time.sleep(args.interval)
    finally:
        if live is not None:
            live.stop()
