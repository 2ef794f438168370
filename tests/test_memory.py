"""Memory stays flat: connections (TCP and TLS) and tasks opened and finished in sequence.

Runs ``bench/memory.py``'s short mode on both loops, each workload in a fresh
process after a warm-up of the same workload, and bounds the growth of
``tracemalloc``'s current size over the measured run (``memory.BOUND`` bytes
per operation plus ``memory.SLACK``; the record runs, a million operations,
are in bench/README.md). RSS is reported, not asserted: the allocator keeps
pages as it pleases. The control shows the check sees a leak: the same
workload keeping every transport or task in a list fails it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support import aloop_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import memory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads RSS from /proc/self/status (Linux)"
)


def measure(loop: str, kind: str, count: int, leak: bool = False) -> dict[str, Any]:
    return memory.spawn(loop, kind, count, memory.BATCH[kind], leak, env=aloop_env())


@pytest.mark.parametrize("loop", ["asyncio", "aloop"])
@pytest.mark.parametrize("kind", ["tcp", "tls", "tasks"])
def test_memory_stays_flat(loop: str, kind: str) -> None:
    r = measure(loop, kind, memory.SHORT[kind])
    assert r["ops"] == memory.SHORT[kind]
    assert memory.within_bound(r), memory.row(r)


@pytest.mark.parametrize(("kind", "count"), [("tcp", 500), ("tls", 50), ("tasks", 5000)])
def test_the_check_sees_a_leak(kind: str, count: int) -> None:
    # The control: every client transport (or task) kept alive, one per operation.
    r = measure("aloop", kind, count, leak=True)
    assert not memory.within_bound(r), memory.row(r)
