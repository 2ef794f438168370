"""Smoke test of the benchmark suite: bench/run.py --quick --repeat 1.

Checks that every benchmark produced a positive, finite figure on every loop and that
each one did the work it claims (callbacks run, results gathered, timers fired, ...).
No timing assertions: absolute figures on a shared machine are noise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support import aloop_env

import aloop

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "run.py"
sys.path.insert(0, str(ROOT / "bench"))

from benchmarks import BENCHMARKS  # noqa: E402

# Workload sizes at --quick scale (0.01), as the benchmarks must report them.
EXPECTED_QUICK: dict[str, dict[str, int]] = {
    "chain": {"callbacks": 10_000},
    "batch": {"callbacks": 10_000, "batches": 10},
    "sleep0": {"switches": 10_000, "tasks": 1000},
    "pingpong": {"correct_replies": 1000, "pongs": 1000},
    "gather": {"results": 1000, "in_place": 1000},
    "timers": {"fired": 500, "cancelled_fired": 0},
    "mem_100k": {"started": 10_000, "waiting": 10_000, "finished": 10_000},
    "mem_1m": {"started": 10_000, "waiting": 10_000, "finished": 10_000},
    "mem_traced": {"started": 10_000, "waiting": 10_000, "finished": 10_000},
}


# The optional loops, and why one may be missing.
OPTIONAL_LOOPS = {
    "uvloop": "uvloop is not installed (optional, pip install uvloop)",
    "rloop": "rloop is not installed (optional; scripts/env.sh installs it where it has wheels)",
    "zuvloop": "zuvloop is not installed (optional; wheels for Python 3.14 and later only)",
}


def loops_under_test() -> list[Any]:
    optional = [
        pytest.param(
            name,
            marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=reason),
        )
        for name, reason in OPTIONAL_LOOPS.items()
    ]
    return ["asyncio", "aloop", *optional]


@pytest.fixture(scope="module", params=loops_under_test())
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    loop: str = request.param
    out = tmp_path_factory.mktemp("bench") / f"{loop}.json"
    _bench(RUN, "--quick", "--repeat", "1", "--loops", loop, "--json", str(out))
    data: dict[str, Any] = json.loads(out.read_text())
    data["loop"] = loop
    return data


def _bench(script: Path, *args: str) -> str:
    """Run a bench script; its standard output (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=aloop_env(),
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quick_sizes_cover_every_benchmark() -> None:
    assert set(EXPECTED_QUICK) == {b.name for b in BENCHMARKS}


def test_loop_was_measured(report: dict[str, Any]) -> None:
    desc = report["info"]["loops"][report["loop"]]
    assert desc["available"], desc.get("error")
    if report["loop"] == "aloop":
        # The bench child imports the aloop this process runs (aloop_env()).
        assert desc["compiled"] is aloop.COMPILED


@pytest.mark.parametrize("bench", [b.name for b in BENCHMARKS])
def test_figure_is_positive_and_finite(report: dict[str, Any], bench: str) -> None:
    runs = [r for r in report["runs"] if r["bench"] == bench]
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "ok", run.get("error")
    assert math.isfinite(run["value"]) and run["value"] > 0


@pytest.mark.parametrize("bench", [b.name for b in BENCHMARKS])
def test_benchmark_did_the_work(report: dict[str, Any], bench: str) -> None:
    (run,) = [r for r in report["runs"] if r["bench"] == bench]
    assert run["status"] == "ok", run.get("error")
    assert run["expected"] == EXPECTED_QUICK[bench]
    assert run["observed"] == run["expected"]


def test_observability_bench_reports_every_mode() -> None:
    out = _bench(ROOT / "bench" / "observability.py", "--quick", "--repeat", "1")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert list(rows) == ["off", "monitor", "monitor+detail", "trace"]
    for ns, overhead, memory in rows.values():
        assert float(ns) > 0 and math.isfinite(float(overhead.rstrip("%")))
        assert float(memory) > 0
