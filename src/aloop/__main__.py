"""``python -m aloop``: an asyncio REPL on aloop, and tools for running aloop programs.

    python -m aloop                    asyncio REPL: top-level await, tasks() (also: repl)
    python -m aloop info               version, compiled or interpreted, backend, Python
    python -m aloop ps PID             tasks: state, what each awaits, steps, CPU
    python -m aloop pstree PID         the task tree
    python -m aloop top PID            live view, refreshed every second
    python -m aloop cancel PID TASK    cancel a task by name
    python -m aloop trace PID --seconds 5 -o out.json   Perfetto / Chrome trace
    python -m aloop web PID            a live web page (on 127.0.0.1)
    python -m aloop kernel install     the Jupyter kernel running on aloop

``python -m aloop COMMAND --help`` says more. ps, pstree, top, cancel, trace
and web need the program's monitor on: ``aloop.run(main(), monitor=True)``
or the environment variable ``ALOOP_MONITOR=1``.
"""

from aloop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
