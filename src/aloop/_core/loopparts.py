"""The bases of ``aloop.Loop``: the compiled scheduler and its interpreted parts.

``Loop`` is ``BaseLoop`` (``aloop._core.scheduler``, compiled) plus the
network and process parts (``aloop.network``, ``aloop.processes``), whose
methods use BaseLoop's state and methods and pass the loop to the
transports as a ``LoopAPI``. The type checker sees each part as a subclass
of both (``LoopPart``). At run time they are plain mixins, and ``Loop``
names BaseLoop first (``LoopCore``), so BaseLoop comes right after ``Loop``
in its MRO: mypyc checks the ``self`` of every call from Python or C into a
compiled method (a Task's ``loop.call_soon``) by walking the MRO until
BaseLoop, one step per class before it.

All of the loop's state is declared in ``BaseLoop.__init__``, parts'
included: a compiled BaseLoop has no instance ``__dict__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aloop._core.scheduler import BaseLoop

__all__ = ["LoopCore", "LoopPart"]

if TYPE_CHECKING:
    from aloop._core.loopapi import LoopAPI

    class LoopPart(BaseLoop, LoopAPI):
        """A BaseLoop that also provides what the transports ask of a loop
        (``Loop`` does, with both parts), passed to them as ``self``."""

    class LoopCore:
        """Nothing to the type checker: BaseLoop comes through the LoopParts."""

else:
    LoopPart = object
    LoopCore = BaseLoop
