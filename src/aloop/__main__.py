"""``python -m aloop``: look into a running aloop program from outside.

    python -m aloop ps PID             tasks: state, what each awaits, steps, CPU
    python -m aloop pstree PID         the task tree
    python -m aloop top PID            live view, refreshed every second
    python -m aloop cancel PID TASK    cancel a task by name
    python -m aloop trace PID --seconds 5 -o out.json   Perfetto / Chrome trace
    python -m aloop web PID            a live web page (on 127.0.0.1)

The program must run with its monitor on: ``aloop.run(main(), monitor=True)``
or the environment variable ``ALOOP_MONITOR=1``.
"""

from aloop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
