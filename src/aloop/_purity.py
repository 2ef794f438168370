"""Compiled or interpreted: ``ALOOP_PURE=1`` runs the same source uncompiled.

mypyc installs each compiled module as an extension next to its ``.py``
source. With ``ALOOP_PURE`` set, a meta-path finder loads those modules from
the source instead, so one installation serves both modes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# The modules mypyc compiles (setup.py reads this list too).
COMPILED_MODULES = (
    "aloop._io.poller",
    "aloop._io.wakeup",
    "aloop._core.handles",
    "aloop._core.timers",
    "aloop._core.fdtable",
    "aloop._core.hooks",
    "aloop._core.recorder",
    "aloop._core.clock",
    "aloop._core.lifetime",
    "aloop._core.scheduler",
    "aloop._transports.base",
    "aloop._transports.stream",
    "aloop._transports.datagram",
)

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def pure_requested() -> bool:
    return os.environ.get("ALOOP_PURE", "") not in ("", "0")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds aloop's compiled modules as plain ``.py`` source."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        source = os.path.join(_PACKAGE_DIR, *fullname.split(".")[1:]) + ".py"
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    """Honour ``ALOOP_PURE`` for the imports that follow."""
    if pure_requested() and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())


def is_compiled() -> bool:
    """True when the scheduler was loaded from a mypyc extension."""
    module = sys.modules.get("aloop._core.scheduler")
    filename = getattr(module, "__file__", None) or ""
    return not filename.endswith(".py")
