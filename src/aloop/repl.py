"""``python -m aloop``: an asyncio REPL with top-level ``await`` on an aloop loop.

Like ``python -m asyncio``: the loop runs in the main thread, the console
reads lines in another thread and hands each statement to the loop. A
statement that awaits runs as a task; tasks it creates keep running while
the prompt waits for the next line. Ctrl-C cancels the statement running
now and keeps the REPL; Ctrl-D or ``exit()`` leaves it, cancelling the
tasks still alive. ``tasks()`` prints the loop's task tree.
"""

from __future__ import annotations

import ast
import asyncio
import code
import concurrent.futures
import contextvars
import dataclasses
import importlib
import inspect
import os
import platform
import signal
import sys
import threading
import types
import warnings
from typing import Any

import aloop
from aloop.inspect import format_tree, snapshot, track
from aloop.runner import finish_loop

__all__ = ["banner", "run_repl"]


def _can_use_pyrepl() -> bool:
    """The 3.13+ line editor: only on a terminal, and not under ``PYTHON_BASIC_REPL``."""
    if not sys.flags.ignore_environment and os.getenv("PYTHON_BASIC_REPL"):
        return False
    try:
        return bool(importlib.import_module("_pyrepl.main").CAN_USE_PYREPL)
    except (ImportError, AttributeError):
        return False


def banner() -> str:
    """What the REPL says first: aloop's version and mode, then Python's."""
    mode = "compiled" if aloop.COMPILED else "interpreted"
    implementation = platform.python_implementation()
    return (
        f"aloop {aloop.__version__} REPL ({mode}) on {implementation} {sys.version} "
        f"on {sys.platform}\n"
        'Use "await" directly instead of "asyncio.run()"; '
        "tasks keep running between lines.\n"
        'Type "tasks()" for the task tree, "help", "copyright", "credits" or "license" '
        "for more information.\n"
    )


class _Session:
    """The statement in flight, shared by the console thread and the loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # One context for every statement: a ContextVar set on one line is
        # seen on the next, as in the asyncio REPL.
        self.context = contextvars.copy_context()
        #: The console's last statement (set before the loop gets it).
        self.submitted: _Statement | None = None
        self.interrupted = False
        #: Ctrl-Cs so far (counted on the loop's thread), and their count when
        #: the last statement started.
        self.interrupts = 0
        self.started_at = 0
        # Who says "KeyboardInterrupt": the console for a statement it waits on,
        # pyrepl's prompt otherwise; ``announced`` keeps it to once per Ctrl-C.
        self.lock = threading.Lock()
        self.in_statement = False
        self.announced = 0
        self.exit_code: object = 0

    def submit(
        self,
        code: types.CodeType,
        globals_: dict[str, Any],
        future: concurrent.futures.Future[Any],
        after: int | None,
    ) -> None:
        """Hand one compiled statement to the loop (console thread)."""
        statement = _Statement(code, globals_, future, after)
        with self.lock:
            self.in_statement = True
            # Known before the loop gets it: a Ctrl-C handled as it arrives finds it.
            self.submitted = statement
        self.loop.call_soon_threadsafe(self.start, statement, context=self.context)

    def start(self, statement: _Statement) -> None:
        """Run one statement (loop thread): directly, or as a task if it awaits.

        ``statement.after``: None for an input's first statement; for the next
        ones (pyrepl reads several at once), the Ctrl-C count when the one before
        started: a Ctrl-C since then skips the rest of the input.
        """
        future, after = statement.future, statement.after
        if statement.begun or future.done():  # run already, or answered
            return
        statement.begun = True
        self.interrupted = after is not None and self.interrupts != after
        if self.interrupted:
            future.set_exception(KeyboardInterrupt())
            return
        self.started_at = self.interrupts
        try:
            result = types.FunctionType(statement.code, statement.globals)()
        except KeyboardInterrupt as exc:
            self.interrupted = True
            self.interrupts += 1  # the rest of the input is skipped too
            future.set_exception(exc)
            return
        except BaseException as exc:
            future.set_exception(exc)
            return
        if not inspect.iscoroutine(result):
            future.set_result(result)
            return
        try:
            statement.task = self.loop.create_task(result, context=self.context)
        except BaseException as exc:
            future.set_exception(exc)
            return
        statement.task.add_done_callback(lambda done: _settle(future, done))

    def interrupt(self) -> None:
        """Ctrl-C reached the loop (main thread): cancel the statement running now.

        Python runs the SIGINT handler late when the signal came between two of
        its checks (say as the loop went to block in epoll): then it raises as the
        loop picks up the next statement, before it begins. That Ctrl-C was for
        the idle prompt: the statement runs as if it came after.
        """
        self.interrupted = True
        self.interrupts += 1
        statement = self.submitted
        if statement is None or statement.future.done():
            return
        task = statement.task
        if not statement.begun:
            self.loop.call_soon(self.start, statement, context=self.context)
        elif task is None:
            # Raised outside the statement's own code: answer the console anyway.
            statement.future.set_exception(KeyboardInterrupt())
        elif not task.done():
            task.cancel()
        else:  # raised in the loop before the task's done callback ran
            _settle(statement.future, task)


@dataclasses.dataclass(eq=False)
class _Statement:
    """One statement on its way from the console thread to the loop."""

    code: types.CodeType
    globals: dict[str, Any]
    future: concurrent.futures.Future[Any]
    #: See ``_Session.start``.
    after: int | None
    begun: bool = False
    task: asyncio.Task[Any] | None = None


def _settle(future: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    """Hand a statement task's outcome to the console thread."""
    if future.done():
        return
    if task.cancelled():
        future.set_exception(asyncio.CancelledError())
    elif (exc := task.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(task.result())


class AsyncConsole(code.InteractiveConsole):
    """A console whose statements run on the loop (``await`` allowed at top level)."""

    def __init__(self, locals_: dict[str, Any], session: _Session, pyrepl: bool) -> None:
        super().__init__(locals_, filename="<stdin>")
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.session = session
        self.pyrepl = pyrepl
        self._first = True  # the next statement is its input's first
        self._skip = False  # Ctrl-C stopped this input

    def push(self, *args: Any, **kwargs: Any) -> bool:
        """One input (pyrepl: all its statements; ``code``: one line)."""
        self._first = True
        self._skip = False
        return super().push(*args, **kwargs)

    def runcode(self, code: types.CodeType) -> Any:
        """Run ``code`` on the loop's thread and wait for it (console thread)."""
        session = self.session
        if self._skip:  # 3.13.0's pyrepl goes on after a failed statement
            return getattr(self, "STATEMENT_FAILED", None)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        assert isinstance(self.locals, dict)
        after = None if self._first else session.started_at
        self._first = False
        session.submit(code, self.locals, future, after)
        try:
            return future.result()
        except SystemExit as exc:
            session.exit_code = exc.code
            raise  # ends the console; the main thread then stops the loop
        except BaseException as exc:
            if session.interrupted:
                return self._interrupted()
            self._show(exc)
            return getattr(self, "STATEMENT_FAILED", None)
        finally:
            with session.lock:
                session.in_statement = False

    def _interrupted(self) -> Any:
        self._skip = True
        session = self.session
        with session.lock:
            fresh = session.announced < session.interrupts
            session.announced = session.interrupts
        if fresh:
            self.write("\nKeyboardInterrupt\n")
        return getattr(self, "STATEMENT_FAILED", None)

    def _show(self, exc: BaseException) -> None:
        """The traceback from the statement's own frames on, not the REPL's plumbing."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename in _PLUMBING:
            tb = tb.tb_next
        if tb is not None:
            exc.__traceback__ = tb
        try:
            raise exc  # showtraceback reads sys.exc_info() and skips this frame
        except BaseException:
            self.showtraceback()


_PLUMBING = frozenset({__file__, concurrent.futures._base.__file__})


def _console_type(pyrepl: bool) -> type[AsyncConsole]:
    """With pyrepl, its colored console underneath (pyrepl reads multi-line input
    itself); else ``code``'s, which asks for more lines on a pipe too."""
    if pyrepl:
        colored = importlib.import_module("_pyrepl.console").InteractiveColoredConsole
        return type("AsyncConsole", (AsyncConsole, colored), {})
    return AsyncConsole


def _task_tree(loop: asyncio.AbstractEventLoop, done: bool) -> str:
    rows = snapshot(loop, include_done=done)
    return format_tree(rows) if rows else "no tasks"


def _tasks_builtin(loop: asyncio.AbstractEventLoop) -> Any:
    def tasks(*, done: bool = False) -> None:
        """Print the loop's tasks as a tree, each under the task that created it,
        with its state and what it awaits; ``done=True`` adds recently ended ones."""
        if sys.stdout.isatty() and _print_rich(loop, done):
            return
        print(_task_tree(loop, done))

    return tasks


def _print_rich(loop: asyncio.AbstractEventLoop, done: bool) -> bool:
    """The tree drawn by rich, as ``python -m aloop pstree`` does; False without rich."""
    try:
        import rich.console

        from aloop.tooling.views import tasks_tree

        rows = snapshot(loop, include_done=done)
        reply = {"pid": os.getpid(), "tasks": [dataclasses.asdict(row) for row in rows]}
        rich.console.Console().print(tasks_tree(reply))
    except Exception:  # rich absent or a view it cannot draw: the plain text
        return False
    return True


class _ReplThread(threading.Thread):
    """Reads and compiles lines; runs each statement on the loop through the console."""

    def __init__(self, console: AsyncConsole, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="Interactive thread", daemon=True)
        self.console = console
        self.loop = loop

    def run(self) -> None:
        # Ctrl-C belongs to the loop's (main) thread, which cancels the statement.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        console = self.console
        try:
            if not sys.flags.quiet:
                console.write(banner())
            _run_startup(console)
            console.write(f"{getattr(sys, 'ps1', '>>> ')}import asyncio\n")
            if console.pyrepl:
                run = importlib.import_module("_pyrepl.simple_interact")
                run.run_multiline_interactive_console(console)
            else:
                console.interact(banner="", exitmsg="")
        except SystemExit:
            pass  # exit(): the code is in the session
        finally:
            # Statements never run (the console ended first) are not news.
            warnings.filterwarnings(
                "ignore", message=r"^coroutine .* was never awaited$", category=RuntimeWarning
            )
            self.loop.call_soon_threadsafe(self.loop.stop)

    def interrupt(self) -> bool:
        """Ctrl-C at pyrepl's prompt: have it show the KeyboardInterrupt and clear
        the line; False where it does not (``code``'s prompt ignores Ctrl-C)."""
        if not self.console.pyrepl:
            return False
        reader = importlib.import_module("_pyrepl.simple_interact")._get_reader()
        if reader.threading_hook is None:
            return False
        reader.threading_hook.add("")
        return True


def _run_startup(console: AsyncConsole) -> None:
    """Run ``PYTHONSTARTUP`` in the REPL's namespace, as the interactive interpreter does."""
    path = None if sys.flags.ignore_environment else os.getenv("PYTHONSTARTUP")
    if not path:
        return
    sys.audit("cpython.run_startup", path)
    try:
        import tokenize

        with tokenize.open(path) as source:
            startup = compile(source.read(), path, "exec")
        exec(startup, console.locals)
    except SystemExit:
        raise
    except BaseException:
        console.showtraceback()


def _setup_readline(namespace: dict[str, Any], pyrepl: bool) -> None:
    """History and completion on a terminal (the interactive hook), completing our names."""
    if not sys.stdin.isatty():
        return  # a pipe: no line editing, and no history file written
    hook = getattr(sys, "__interactivehook__", None)
    if hook is not None:
        sys.audit("cpython.run_interactivehook", hook)
        hook()
    if pyrepl:
        return  # pyrepl completes from the console's namespace itself
    try:
        import readline
        import rlcompleter
    except ImportError:
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)


def _namespace(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    return {
        "__name__": "__main__",
        "__package__": None,
        "__loader__": None,
        "__spec__": None,
        "__builtins__": __builtins__,
        "asyncio": asyncio,
        "aloop": aloop,
        "tasks": _tasks_builtin(loop),
    }


def _drive(loop: asyncio.AbstractEventLoop, session: _Session, thread: _ReplThread) -> None:
    """Run the loop until the console ends; Ctrl-C cancels the statement and goes on."""
    while True:
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            with session.lock:
                session.interrupt()
                # A statement the console waits on says it; else pyrepl's prompt.
                if not session.in_statement and thread.interrupt():
                    session.announced = session.interrupts
            continue
        except SystemExit as exc:  # sys.exit() in a task created at the prompt
            session.exit_code = exc.code
        return


def run_repl() -> int:
    """Run the REPL until Ctrl-D or ``exit()``; return the exit status."""
    sys.audit("cpython.run_stdin")
    pyrepl = _can_use_pyrepl()
    loop = aloop.new_event_loop()
    asyncio.set_event_loop(loop)
    track(loop)  # parents and creation sites for tasks()
    session = _Session(loop)
    namespace = _namespace(loop)
    console = _console_type(pyrepl)(namespace, session, pyrepl)
    _setup_readline(namespace, pyrepl)
    thread = _ReplThread(console, loop)
    thread.start()
    _drive(loop, session, thread)
    console.write("exiting aloop REPL...\n")
    finish_loop(loop, "REPL exit")
    asyncio.set_event_loop(None)
    return _exit_status(session.exit_code)


def _exit_status(code: object) -> int:
    """``exit(code)``'s status as ``sys.exit`` would make it (a message goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
