"""Differential fuzzing: random asyncio programs give the same trace on both loops.

The generator, the interpreter and the stdlib loop on virtual time live in
bench/fuzz.py (which also runs longer searches); its docstring lists what the
trace records and the differences allowed, the README's documented ones.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hypothesis", reason="needs hypothesis (a dev dependency: scripts/env.sh)")

from hypothesis import HealthCheck, find, given, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import fuzz  # noqa: E402

FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same programs on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(fuzz.programs, fuzz.eager_flags, fuzz.debug_flags)
def test_random_programs_trace_the_same_on_both_loops(
    program: list[fuzz.Step], eager: bool, debug: bool
) -> None:
    fuzz.check(program, eager, debug)


@FAST
@given(fuzz.clients, fuzz.eager_flags)
def test_server_clients_trace_the_same_on_both_loops(program: list[fuzz.Step], eager: bool) -> None:
    fuzz.check_clients(program, eager)


def test_an_accept_takes_asyncio_one_more_iteration() -> None:
    """Found by the fuzzer (3.15, seed 41): allowed, so server traces are normalised.

    A client connects while another task's ``asyncio.wait(timeout=0)`` is due:
    asyncio accepts through a task (``_accept_connection2``), one iteration
    more than aloop, so its zero-delay timer fires before the server reads the
    line. The instants, lines and outcomes agree; only the interleaving within
    the instant differs, which asyncio does not specify.
    """
    program = [("spawn", [("spawn", [("wait_first", 0, 0)])]), ("connect", 0)]
    stdlib, ours = fuzz.run_on("asyncio", program), fuzz.run_on("aloop", program)
    waited, line = (0.0, "t2", "waited", 0), (0.0, "server", "line", b"t0 0\n")
    assert stdlib.index(waited) < stdlib.index(line)
    assert ours.index(line) < ours.index(waited)
    assert fuzz.normalise_server(stdlib) == fuzz.normalise_server(ours)


def test_timers_tied_at_one_instant_run_in_scheduling_order() -> None:
    # The README's documented difference, pinned on both loops (asyncio's tie
    # order is made the scheduling order in fuzz.VirtualStdLoop).
    program = [("later", 1, 1), ("at", 1, 2), ("later", 1, 3), ("sleep", 1)]
    for name in fuzz.LOOPS:
        trace = fuzz.run_on(name, program)
        fired = [e[1] for e in trace if isinstance(e[1], str) and e[1].startswith("cb")]
        assert fired == ["cb1", "cb2", "cb3"], name


def test_a_stream_read_waits_for_later_writes_in_order() -> None:
    program = [
        ("spawn", [("sleep", 1), ("write", 3), ("sleep", 1), ("write", 4)]),
        ("read", 5),
        ("read", 2),
    ]
    trace = fuzz.run_on("aloop", program)
    # 3 bytes at t=1 are not enough: the first read ends at t=2, the second at once.
    first, second = zlib.crc32(bytes(range(5))), zlib.crc32(bytes([5, 6]))
    assert (2.0, "t0", "read", first, 5) in trace and (2.0, "t0", "read", second, 2) in trace
    fuzz.check(program)


def test_cancelling_a_group_child_and_a_timeout_agree() -> None:
    program = [
        ("group", [[("sleep", 3)], [("cancel_task", 1, "why"), ("raise", 4)]]),
        ("timeout", 0.5, [("lock", 0, 1)]),
    ]
    fuzz.check(program)


def test_the_comparison_finds_and_shrinks_a_planted_difference(monkeypatch: Any) -> None:
    """A loop whose timer ties run last-scheduled-first must be caught, and shrunk."""

    class _LifoTimer(fuzz._SeqTimer):
        __slots__ = ()

        def _key(self) -> tuple[float, int]:
            return (self._when, -self._seq)

    class LifoTies(fuzz.VirtualStdLoop):
        def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
            self._timer_seq += 1
            timer = _LifoTimer(self._timer_seq, when, callback, args, self, context)
            fuzz.heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
            timer._scheduled = True
            return timer

    monkeypatch.setitem(fuzz.LOOPS, "aloop", LifoTies)

    def differs(program: list[fuzz.Step]) -> bool:
        return fuzz.run_on("asyncio", program) != fuzz.run_on("aloop", program)

    shrunk = find(
        fuzz.programs,
        differs,
        settings=settings(max_examples=2000, database=None, deadline=None, derandomize=True),
    )
    # Two timers at one instant (and nothing else) is the smallest difference;
    # soon_chain's callback sets a call_later(0) timer.
    kinds = {step[0] for step in shrunk}
    assert len(shrunk) == 2 and kinds <= {"later", "at", "later_cancel", "soon_chain"}, shrunk
