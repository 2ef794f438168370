"""Keeps aloop's compiled modules alive until the interpreter's very end.

A mypyc module reads its globals through a pointer it does not own. At
shutdown CPython drops ``sys.modules`` and collects garbage, and a module
nothing else refers to is freed then, while objects that outlive it may
still run its code: a pending Task's finalizer calls
``loop.call_exception_handler``, a transport's ``__del__`` closes it. Reading
the freed globals then crashes (3.12, 3.13) or spins forever (3.11).
Interpreted modules are safe because every function holds its globals. The
list below is a C-level static that is never released, so the modules it
holds (and their globals) live as long as the process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Final

_KEPT: Final[list[object]] = []


def keep_alive(names: Iterable[str]) -> None:
    """Hold the already-imported modules ``names`` for the rest of the process."""
    for name in names:
        module = sys.modules.get(name)
        if module is not None and module not in _KEPT:
            _KEPT.append(module)
