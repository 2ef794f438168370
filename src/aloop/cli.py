"""``python -m aloop``: its commands and their arguments (the views are in ``tooling/views.py``)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
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


_PID_HELP = (
    "id of an aloop program running with its monitor on "
    "(aloop.run(main(), monitor=True) or ALOOP_MONITOR=1)"
)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m aloop`` with ``argv``; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command in (None, "repl"):
        from aloop.repl import run_repl

        return run_repl()
    if args.command == "info":
        print(_info())
        return 0
    if args.command == "kernel":
        return _run_kernel(args)
    try:
        return _run(args)
    except (FileNotFoundError, RuntimeError, ConnectionError) as exc:
        print(f"aloop: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    """Every command with its help (``python -m aloop [COMMAND] --help``)."""
    import aloop

    parser = argparse.ArgumentParser(
        prog="python -m aloop",
        description="Without a command: an asyncio REPL (top-level await) running on aloop. "
        "The commands look into a running aloop program from outside, or describe this "
        "installation.",
        epilog="ps, pstree, top, cancel, trace and web need the program's monitor: "
        "aloop.run(main(), monitor=True) or the environment variable ALOOP_MONITOR=1.",
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"aloop {aloop.__version__}",
        help="print aloop's version and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _add(
        sub,
        "repl",
        "asyncio REPL on an aloop loop (the default without a command)",
        "An interactive console like python -m asyncio, on aloop: top-level await, tasks "
        "that keep running between lines, Ctrl-C cancels the running statement, tasks() "
        "prints the task tree.",
    )
    _add(
        sub,
        "info",
        "version, compiled or interpreted, I/O backend, Python",
        "Describe this installation of aloop: its version, whether its hot modules run "
        "compiled (mypyc) or interpreted (ALOOP_PURE=1), the I/O backend a loop uses, "
        "and the Python running it.",
    )
    _add_views(sub)
    _add_kernel(sub)
    return parser


def _add(sub: Any, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=description)
    return parser


def _add_views(sub: Any) -> None:
    """The commands that ask a running program's monitor (see ``tooling/monitor.py``)."""
    for name, help_ in (
        ("ps", "table of a program's tasks: state, what each awaits, steps, CPU"),
        ("pstree", "a program's tasks as a tree, each under the task that created it"),
        ("top", "the task table, refreshed live"),
    ):
        cmd = _add(sub, name, help_, f"Show the {help_.split(':')[0]} (needs rich).")
        cmd.add_argument("pid", type=int, help=_PID_HELP)
        if name == "top":
            cmd.add_argument(
                "--interval", type=float, default=1.0, help="seconds between refreshes (default 1)"
            )
            cmd.add_argument("--iterations", type=int, default=0, help="stop after N (0: never)")
    cancel = _add(
        sub,
        "cancel",
        "cancel a task of a program by name",
        "Cancel one task of a running program, as task.cancel() would; "
        "prints whether a task of that name was found.",
    )
    cancel.add_argument("pid", type=int, help=_PID_HELP)
    cancel.add_argument("task", help="the task's name (as ps shows it)")
    web = _add(
        sub,
        "web",
        "a live web page of a program's tasks",
        "Serve a page showing a running program's tasks live, on 127.0.0.1.",
    )
    web.add_argument("pid", type=int, help=_PID_HELP)
    web.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (0: any free port)")
    trace = _add(
        sub,
        "trace",
        "record a trace (Perfetto / Chrome JSON)",
        "Record what a running program's loop does for a while into a JSON trace "
        "that ui.perfetto.dev or chrome://tracing opens.",
    )
    trace.add_argument("pid", type=int, help=_PID_HELP)
    trace.add_argument("--seconds", type=float, default=5.0, help="how long (default 5)")
    trace.add_argument(
        "-o", "--output", default="aloop-trace.json", help="file to write (default %(default)s)"
    )


def _add_kernel(sub: Any) -> None:
    """``kernel``: the Jupyter kernel's commands, defined in ``aloop.jupyter``."""
    try:
        from aloop.jupyter import add_kernel_command
    except ImportError as exc:
        _add(sub, "kernel", "Jupyter kernel on aloop (unavailable)", f"Unavailable: {exc}.")
        return
    add_kernel_command(sub)


def _run_kernel(args: argparse.Namespace) -> int:
    try:
        from aloop.jupyter import run_kernel_command
    except ImportError as exc:
        print(f"aloop: the kernel command is unavailable: {exc}", file=sys.stderr)
        return 1
    return run_kernel_command(args)


def _info() -> str:
    """``python -m aloop info``: what runs here."""
    import platform

    import aloop
    from aloop import _purity

    compiled = []
    for name in _purity.COMPILED_MODULES:
        module = importlib.import_module(name)
        if not (getattr(module, "__file__", None) or "").endswith(".py"):
            compiled.append(name.rsplit(".", 1)[-1])
    total = len(_purity.COMPILED_MODULES)
    if len(compiled) == total:
        mode = f"yes, all {total} hot modules (mypyc)"
    elif compiled:
        missing = sorted(
            {name.rsplit(".", 1)[-1] for name in _purity.COMPILED_MODULES} - set(compiled)
        )
        mode = f"partly, {len(compiled)} of {total} modules (interpreted: {', '.join(missing)})"
    elif _purity.pure_requested():
        mode = "no, interpreted (ALOOP_PURE is set)"
    else:
        mode = "no, interpreted (no compiled modules installed)"
    loop = aloop.new_event_loop()
    try:
        backend = loop._poller.backend
    finally:
        loop.close()
    return "\n".join(
        (
            f"aloop {aloop.__version__}",
            f"compiled: {mode}",
            f"backend: {backend}",
            f"python: {platform.python_implementation()} {platform.python_version()} "
            f"({sys.executable}) on {sys.platform}",
            f"location: {os.path.dirname(aloop.__file__)}",
        )
    )


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
