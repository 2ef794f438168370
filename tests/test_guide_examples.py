"""Every example of the asyncio guide (/work/shared/seed/asyncio-guide-ru.md) on aloop.

The guide is a transcript of Jupyter cells (top-level ``await``, outputs shown
under each cell). Each example here is that cell as a script: the guide's code
verbatim at the top (so the line numbers in task reprs are the guide's), then
an ``async def cell()`` standing in for the notebook's top-level code, run by
a small runner (``guide_runner.py``) that takes ``--loop asyncio|aloop``.

Each script runs in a fresh subprocess on both loops. The two outputs must be
identical (up to object addresses and the path of the library file that holds
``_run_until_complete_cb``), and must equal the lines the guide shows, up to
what legitimately varies: addresses, file paths, task numbers (Jupyter had
created other tasks first) and the notebook kernel's own task, which is our
``cell()`` task. Sleeps are shortened tenfold or more.

Sections of the guide that only name a feature (async iterators, async context
managers, legacy ``@asyncio.coroutine``, threads and processes for blocking and
CPU-bound work) get a small program each, with the output written out here.
"""

# The examples keep the guide's Russian comments: Cyrillic letters are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import aloop

SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(aloop.__file__)))

RUNNER = '''\
"""Run an example's top-level coroutine on the loop named by --loop."""

import argparse
import asyncio
import sys


def run(coro):
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["asyncio", "aloop"], required=True)
    args = parser.parse_args()
    if args.loop == "aloop":
        import aloop

        factory = aloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(coro)
        loop = runner.get_loop()
        print(f"guide_runner: loop={type(loop).__module__}.{type(loop).__qualname__}",
              file=sys.stderr)
    return result
'''

LOOP_CLASS = {"asyncio": "asyncio.unix_events._UnixSelectorEventLoop", "aloop": "aloop.loop.Loop"}

RUN_FOOTER = """
if __name__ == "__main__":
    from guide_runner import run

    run(cell())
"""


@dataclass
class Example:
    """A guide example: its script and the output it must print (after ``normalize``)."""

    name: str
    source: str
    expected: list[str | re.Pattern[str]]
    # Lines starting with this prefix come from iterating a set: order is arbitrary.
    unordered_prefix: str | None = None
    guide_renames: dict[str, str] = field(default_factory=dict)


def normalize_for_guide(text: str) -> str:
    """What legitimately differs between the guide's notebook and a script."""
    text = re.sub(r"0x[0-9a-f]+", "0xADDR", text)
    text = re.sub(r"Task-\d+", "Task-N", text)
    return re.sub(r" at /[^\s:>\]]+:(\d+)", r" at FILE:\1", text)


def normalize_between_loops(text: str, script: Path) -> str:
    """What legitimately differs between two runs of one script on the two loops.

    Object addresses, and the file and line of library code: the main task's
    done callback ``_run_until_complete_cb`` lives in asyncio/base_events.py on
    one loop and in aloop/loop.py on the other. Lines of the script stay exact.
    """
    text = re.sub(r"0x[0-9a-f]+", "0xADDR", text)

    def lib_path(match: re.Match[str]) -> str:
        if match.group(1) == str(script):
            return match.group(0)
        return " at <library>:N"

    return re.sub(r" at (/[^\s:>\]]+):(\d+)", lib_path, text)


def sort_unordered(lines: list[str], prefix: str | None) -> list[str]:
    if prefix is None:
        return lines
    ordered = [line for line in lines if not line.startswith(prefix)]
    unordered = sorted(line for line in lines if line.startswith(prefix))
    return ordered + unordered


def run_example(tmp_path: Path, example: Example, loop: str) -> tuple[str, str]:
    """Run ``example`` in a fresh interpreter on ``loop``; return (stdout, stderr)."""
    (tmp_path / "guide_runner.py").write_text(RUNNER)
    script = tmp_path / f"{example.name}.py"
    script.write_text(example.source + RUN_FOOTER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), SRC_DIR])
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.run(
        [sys.executable, str(script), "--loop", loop],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, f"{loop}: exit {proc.returncode}\n{proc.stderr}"
    stderr_lines = proc.stderr.splitlines()
    assert f"guide_runner: loop={LOOP_CLASS[loop]}" in stderr_lines, proc.stderr
    stderr = "\n".join(line for line in stderr_lines if not line.startswith("guide_runner:"))
    return proc.stdout, stderr


# -- the examples -------------------------------------------------------------------------

# 2.1 and 5.1-5.2: a coroutine function makes a coroutine object and does not run;
# ``await`` runs it. (The guide shows no output for 5.1; these lines are ours.)
DEFINE_AND_AWAIT = Example(
    name="define_and_await",
    source=textwrap.dedent(
        """\
        import asyncio

        # определение корутины
        async def custom_coro():
            # ожидание другой корутины
            print('custom_coro started')
            await asyncio.sleep(0.01)
            print('custom_coro finished')
            return 'RESULT'

        async def cell():
            # создание объекта корутины
            coro = custom_coro()
            # При этом функция корутины не выполняется.
            print('coroutine object created')
            # приостановить выполнение кода и запланировать выполнение целевого объекта
            result = await coro
            print(f'awaited: {result}')
            # Корутина может запустить другую корутину посредством выражения await.
            print(f'awaited again: {await custom_coro()}')
        """
    ),
    expected=[
        "coroutine object created",
        "custom_coro started",
        "custom_coro finished",
        "awaited: RESULT",
        "custom_coro started",
        "custom_coro finished",
        "awaited again: RESULT",
    ],
)

# 5.2, In [2]: the type of a coroutine object.
COROUTINE_TYPE = Example(
    name="coroutine_type",
    source=textwrap.dedent(
        """\
        import asyncio
        # проверка типа корутины

        # определение корутины
        async def custom_coro():
            # ожидание другой корутины
            print('hello from async world')
            await asyncio.sleep(0.01)

        async def cell():
            # создание корутины
            coro = custom_coro()
            # проверка типа корутины
            print(type(coro))

            await coro
        """
    ),
    expected=["<class 'coroutine'>", "hello from async world"],
)

# 5.3, In [7]: running a coroutine from the main coroutine.
RUN_FROM_MAIN = Example(
    name="run_from_main",
    source=textwrap.dedent(
        """\
        import asyncio

        # определение корутины
        async def custom_coro():
            # ожидание другой корутины
            print('Hi from corutine')
            await asyncio.sleep(0.01)
            return 'RESULT'

        # главная корутина
        async def main():
            # выполнение нашей корутины
            await custom_coro()

        # запуск программы, основанной на корутинах
        # asyncio.run(main())

        async def cell():
            await main()
        """
    ),
    expected=["Hi from corutine"],
)

# 7.2, In [3]: asyncio.create_task wraps the coroutine in a Task and schedules it.
CREATE_TASK = Example(
    name="create_task",
    source=textwrap.dedent(
        """\
        import asyncio

        async def custom_coro():
            print('hello from async world')
            await asyncio.sleep(0.01)

        async def cell():
            coro = custom_coro()
            # создание задачи из корутины
            task = asyncio.create_task(coro)
            assert type(task) is asyncio.Task, type(task)
            assert task.get_loop() is asyncio.get_running_loop()
            assert not task.done()
            await task
            assert task.done() and task.result() is None
        """
    ),
    expected=["hello from async world"],
)

# 7.2, In [8] and In [11]: loop.create_task on the current loop, then task.result().
LOOP_CREATE_TASK = Example(
    name="loop_create_task",
    source=textwrap.dedent(
        """\
        import asyncio

        async def custom_coro():
            print('Hi from corutine')
            await asyncio.sleep(0.01)
            return 'RESULT'

        async def cell():
            # получить текущий цикл событий
            loop = asyncio.get_event_loop()
            assert loop is asyncio.get_running_loop()
            # создать задачу и запланировать её выполнение
            task = loop.create_task(custom_coro())
            await asyncio.sleep(0.05)
            while not task.done():
                await asyncio.sleep(0.01)
            print(repr(task.result()))
        """
    ),
    expected=["Hi from corutine", "'RESULT'"],
)

# Task names: unnamed tasks are Task-N, N counting up from 1 in a fresh process.
TASK_NAMES = Example(
    name="task_names",
    source=textwrap.dedent(
        """\
        import asyncio

        async def work():
            await asyncio.sleep(0)
            return asyncio.current_task().get_name()

        async def cell():
            print(asyncio.current_task().get_name())
            first = asyncio.create_task(work())
            second = asyncio.get_running_loop().create_task(work())
            named = asyncio.create_task(work(), name='worker')
            print(first.get_name(), second.get_name(), named.get_name())
            print(await asyncio.gather(first, second, named))
            named.set_name('renamed')
            print(named.get_name())
        """
    ),
    expected=[
        "Task-1",
        "Task-2 Task-3 worker",
        "['Task-2', 'Task-3', 'worker']",
        "renamed",
    ],
)

# 7.2, In [14] and In [18]: the current task and all tasks, from the top-level code.
# In the notebook that is the kernel's task (Kernel.dispatch_queue, with a tornado
# callback); in a script it is the runner's main task, ``cell()``, whose done
# callback is the loop's _run_until_complete_cb.
TOP_LEVEL_TASK_REPR = re.compile(
    r"<Task pending name='Task-N' coro=<[\w.]+\(\) running at FILE:\d+>"
    r" cb=\[[\w.<>]+\(\) at FILE:\d+\]>"
)
CURRENT_AND_ALL_TASKS = Example(
    name="current_and_all_tasks",
    source=textwrap.dedent(
        """\
        import asyncio

        async def cell():
            print(asyncio.current_task())
            print(asyncio.all_tasks())
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert 'coro=<cell() running at ' in repr(asyncio.current_task())
        """
    ),
    expected=[
        TOP_LEVEL_TASK_REPR,
        re.compile(r"\{" + TOP_LEVEL_TASK_REPR.pattern + r"\}"),
    ],
)

# 7.2, In [17]: the current task from the main coroutine. The script keeps the
# cell's first ten lines, so the task repr shows the guide's line numbers: 4 (the
# def, before it starts) and 10 (print(task), while running).
CURRENT_TASK_FROM_MAIN = Example(
    name="current_task_from_main",
    source=textwrap.dedent(
        """\
        # пример получения текущей задачи из главной корутины
        import asyncio
        # определение главной корутины
        async def main():
            # вывод сообщения
            print('main coroutine started')
            # получение текущей задачи
            task = asyncio.current_task()
            # вывод сведений о ней
            print(task)
        # запуск asyncio-программы
        async def cell():
            task = asyncio.create_task(main())
            # the notebook echoes the value of the cell's last expression
            print(task)
            # no await task: that would add a done callback, shown in main's repr
            while not task.done():
                await asyncio.sleep(0)
        """
    ),
    expected=[
        "<Task pending name='Task-10' coro=<main() running at "
        "/var/folders/jk/nrp563kj0jx31d5l4bc19j5c0000gn/T/ipykernel_61324/2760077547.py:4>>",
        "main coroutine started",
        "<Task pending name='Task-10' coro=<main() running at "
        "/var/folders/jk/nrp563kj0jx31d5l4bc19j5c0000gn/T/ipykernel_61324/2760077547.py:10>>",
    ],
)

# 7.2, In [19]: start ten tasks, then list all tasks. The guide's sleeps are
# 1 s (tasks) and 0.1 s (main); here 0.1 s and 0.01 s, so the tasks are still
# running when main lists them, as in the guide.
ALL_TASKS = Example(
    name="all_tasks",
    source=textwrap.dedent(
        """\
        # пример, где запускают множество задач, а после этого получают к ним доступ
        import asyncio
        # корутина для задач
        async def task_coroutine(value):
            # вывод сообщения
            print(f'task {value} is running')
            # краткая блокировка
            await asyncio.sleep(0.1)
        # определение главной корутины
        async def main():
            # вывод сообщения
            print('main coroutine started')
            # запуск нескольких задач
            started_tasks = [asyncio.create_task(task_coroutine(i)) for i in range(10)]
            # выделение времени, необходимого на то, чтобы некоторые из задач запустились
            await asyncio.sleep(0.01)
            # получение всех задач
            tasks = asyncio.all_tasks()
            # вывод сведений обо всех задачах
            for task in tasks:
                print(f'> {task.get_name()}, {task.get_coro()}')
            # ждём завершения всех задач
            for task in started_tasks:
                await task
        # запуск asyncio-программы
        async def cell():
            task = asyncio.create_task(main())
            print(task)
            await task
        """
    ),
    expected=[
        "<Task pending name='Task-11' coro=<main() running at "
        "/var/folders/jk/nrp563kj0jx31d5l4bc19j5c0000gn/T/ipykernel_61324/2850099599.py:10>>",
        "main coroutine started",
        *(f"task {i} is running" for i in range(10)),
        "> Task-3, <coroutine object Kernel.dispatch_queue at 0x105d65560>",
        "> Task-19, <coroutine object task_coroutine at 0x1065dd380>",
        "> Task-16, <coroutine object task_coroutine at 0x1065dd0e0>",
        "> Task-12, <coroutine object task_coroutine at 0x1060698c0>",
        "> Task-21, <coroutine object task_coroutine at 0x1065dd8c0>",
        "> Task-18, <coroutine object task_coroutine at 0x1065dd460>",
        "> Task-14, <coroutine object task_coroutine at 0x1065dcf20>",
        "> Task-11, <coroutine object main at 0x106ad2d40>",
        "> Task-17, <coroutine object task_coroutine at 0x1065dd1c0>",
        "> Task-13, <coroutine object task_coroutine at 0x1065dc2e0>",
        "> Task-15, <coroutine object task_coroutine at 0x1065dcc80>",
        "> Task-20, <coroutine object task_coroutine at 0x1065dd2a0>",
    ],
    unordered_prefix="> ",
    # The kernel's own task in the notebook is the runner's task in a script.
    guide_renames={"Kernel.dispatch_queue": "cell"},
)

# 4.6: the pre-3.5 generator-based coroutine with ``yield from``. asyncio.coroutine
# is gone (3.11), types.coroutine is what remains of it.
LEGACY_COROUTINE = Example(
    name="legacy_coroutine",
    source=textwrap.dedent(
        """\
        import asyncio
        import types

        # объявление собственной корутины в Python 3.4
        @types.coroutine
        def custom_coro():
            # приостановка и выполнение другой корутины
            yield from asyncio.sleep(0.01)
            return 'slept'

        @types.coroutine
        def wait_for_future():
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.call_later(0.01, fut.set_result, 42)
            value = yield from fut
            inner = yield from custom_coro()
            return value, inner

        async def cell():
            print(await custom_coro())
            print(await wait_for_future())
            print(await asyncio.gather(custom_coro(), wait_for_future()))
        """
    ),
    expected=["slept", "(42, 'slept')", "['slept', (42, 'slept')]"],
)

# 2.1: async iterators (``async for``) and async generators.
ASYNC_ITERATION = Example(
    name="async_iteration",
    source=textwrap.dedent(
        """\
        import asyncio

        class Countdown:
            # асинхронный итератор: методы __aiter__() и __anext__()
            def __init__(self, start):
                self.current = start

            def __aiter__(self):
                return self

            async def __anext__(self):
                if self.current == 0:
                    raise StopAsyncIteration
                await asyncio.sleep(0.001)
                self.current -= 1
                return self.current + 1

        async def squares(n):
            try:
                for i in range(n):
                    await asyncio.sleep(0.001)
                    yield i * i
            finally:
                print(f'squares({n}) closed')

        async def cell():
            # обход асинхронного итератора
            async for item in Countdown(3):
                print(item)
            async for item in squares(3):
                print(item)
            print([x async for x in squares(4)])
            gen = squares(100)
            async for item in gen:
                if item >= 4:
                    break
            print('broke out at', item)
            await gen.aclose()
            it = aiter(Countdown(2))
            print(await anext(it), await anext(it), await anext(it, 'exhausted'))
        """
    ),
    expected=[
        "3",
        "2",
        "1",
        "0",
        "1",
        "4",
        "squares(3) closed",
        "squares(4) closed",
        "[0, 1, 4, 9]",
        "broke out at 4",
        "squares(100) closed",
        "2 1 exhausted",
    ],
)

# 2.1: async context managers suspend in their enter and exit methods.
ASYNC_CONTEXT_MANAGERS = Example(
    name="async_context_managers",
    source=textwrap.dedent(
        """\
        import asyncio
        import contextlib

        class Connection:
            def __init__(self, name):
                self.name = name

            async def __aenter__(self):
                await asyncio.sleep(0.001)
                print(f'open {self.name}')
                return self

            async def __aexit__(self, exc_type, exc, tb):
                await asyncio.sleep(0.001)
                print(f'close {self.name}: {exc_type.__name__ if exc_type else None}')
                return exc_type is KeyError

        @contextlib.asynccontextmanager
        async def session(name):
            print(f'begin {name}')
            try:
                yield name.upper()
            finally:
                await asyncio.sleep(0)
                print(f'end {name}')

        async def cell():
            async with Connection('db') as conn:
                print(f'using {conn.name}')
            async with Connection('cache'):
                raise KeyError('suppressed by __aexit__')
            try:
                async with Connection('queue'):
                    raise ValueError('propagates')
            except ValueError as exc:
                print(f'caught {exc}')
            async with session('tx') as value, Connection('log'):
                print(value)
            async with contextlib.AsyncExitStack() as stack:
                for name in ('a', 'b'):
                    await stack.enter_async_context(session(name))
                print('stack entered')
        """
    ),
    expected=[
        "open db",
        "using db",
        "close db: None",
        "open cache",
        "close cache: KeyError",
        "open queue",
        "close queue: ValueError",
        "caught propagates",
        "begin tx",
        "open log",
        "TX",
        "close log: None",
        "end tx",
        "begin a",
        "begin b",
        "stack entered",
        "end b",
        "end a",
    ],
)

# 3.1: blocking calls go to threads (asyncio.to_thread, loop.run_in_executor),
# and the loop keeps running coroutines while a thread blocks.
THREADS = Example(
    name="threads",
    source=textwrap.dedent(
        """\
        import asyncio
        import threading
        import time

        def blocking_io(n):
            time.sleep(0.01)
            return n * 2, threading.current_thread() is threading.main_thread()

        async def cell():
            print(await asyncio.to_thread(blocking_io, 1))
            loop = asyncio.get_running_loop()
            print(await loop.run_in_executor(None, blocking_io, 2))
            print(await asyncio.gather(*(asyncio.to_thread(blocking_io, i) for i in range(5))))
            release = threading.Event()
            blocked = asyncio.create_task(asyncio.to_thread(release.wait, 60))
            for i in range(3):
                await asyncio.sleep(0.001)
                print(f'loop still running {i}')
            release.set()
            print(f'thread released: {await blocked}')
        """
    ),
    expected=[
        "(2, False)",
        "(4, False)",
        "[(0, False), (2, False), (4, False), (6, False), (8, False)]",
        "loop still running 0",
        "loop still running 1",
        "loop still running 2",
        "thread released: True",
    ],
)

# 3.1: CPU-bound work goes to processes (ProcessPoolExecutor via run_in_executor).
PROCESSES = Example(
    name="processes",
    source=textwrap.dedent(
        """\
        import asyncio
        import os
        from concurrent.futures import ProcessPoolExecutor

        def cpu_bound(n):
            return sum(i * i for i in range(n))

        def whoami():
            return os.getpid()

        async def cell():
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(max_workers=2) as pool:
                sizes = (10, 1000, 100_000)
                results = await asyncio.gather(
                    *(loop.run_in_executor(pool, cpu_bound, n) for n in sizes)
                )
                print(results)
                print(results == [cpu_bound(n) for n in sizes])
                pid = await loop.run_in_executor(pool, whoami)
                print(f'ran in another process: {pid != os.getpid()}')
        """
    ),
    expected=[
        "[285, 332833500, 333328333350000]",
        "True",
        "ran in another process: True",
    ],
)

EXAMPLES = [
    DEFINE_AND_AWAIT,
    COROUTINE_TYPE,
    RUN_FROM_MAIN,
    CREATE_TASK,
    LOOP_CREATE_TASK,
    TASK_NAMES,
    CURRENT_AND_ALL_TASKS,
    CURRENT_TASK_FROM_MAIN,
    ALL_TASKS,
    LEGACY_COROUTINE,
    ASYNC_ITERATION,
    ASYNC_CONTEXT_MANAGERS,
    THREADS,
    PROCESSES,
]


def matches(line: str, expected: str | re.Pattern[str]) -> bool:
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(line) is not None
    return line == expected


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_guide_example(tmp_path: Path, example: Example) -> None:
    script = tmp_path / f"{example.name}.py"
    ref_out, ref_err = run_example(tmp_path, example, "asyncio")
    out, err = run_example(tmp_path, example, "aloop")

    # Same program, same output on both loops (and the same warnings, if any).
    def between(text: str) -> list[str]:
        return sort_unordered(
            normalize_between_loops(text, script).splitlines(), example.unordered_prefix
        )

    assert between(out) == between(ref_out)
    assert between(err) == between(ref_err)

    # And the output the guide shows.
    got = sort_unordered(normalize_for_guide(out).splitlines(), example.unordered_prefix)
    expected: list[str | re.Pattern[str]] = []
    for line in example.expected:
        if isinstance(line, str):
            for old, new in example.guide_renames.items():
                line = line.replace(old, new)
            line = normalize_for_guide(line)
        expected.append(line)
    if example.unordered_prefix is not None:
        prefix = example.unordered_prefix
        plain = [e for e in expected if not (isinstance(e, str) and e.startswith(prefix))]
        unordered = sorted(e for e in expected if isinstance(e, str) and e.startswith(prefix))
        expected = [*plain, *unordered]
    assert len(got) == len(expected), "\n".join(got)
    for got_line, want in zip(got, expected, strict=True):
        assert matches(got_line, want), f"{got_line!r} != {want!r}"


def test_all_tasks_example_numbers_tasks_in_creation_order(tmp_path: Path) -> None:
    """In a fresh process: cell is Task-1, main Task-2, the ten workers Task-3..Task-12."""
    out, _ = run_example(tmp_path, ALL_TASKS, "aloop")
    names = dict(re.findall(r"^> (Task-\d+), <coroutine object (\w+)", out, re.M))
    assert names == {
        "Task-1": "cell",
        "Task-2": "main",
        **{f"Task-{n}": "task_coroutine" for n in range(3, 13)},
    }
