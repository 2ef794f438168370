"""Smoke test of the network benchmark: bench/net.py --quick on one echo case per loop.

Checks that the protocol echo server on aloop (and on each optional loop installed) and
the C reference served requests and that every echoed byte was right. No timing
assertions: figures on a shared machine are noise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from tests.support import aloop_env

ROOT = Path(__file__).resolve().parents[1]
NET = ROOT / "bench" / "net.py"
BUILT = all(
    (ROOT / "bench" / "net" / "build" / name).exists() for name in ("echo_client", "echo_server")
)

pytestmark = [
    pytest.mark.skipif(
        shutil.which("gcc") is None and not BUILT,
        reason="gcc is missing: the echo load generator (bench/net/*.c) cannot be built",
    ),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses epoll"),
]


def loops_under_test() -> list[Any]:
    """aloop, and the optional loops where installed (skipped with the reason otherwise)."""
    optional = {
        "uvloop": "uvloop is not installed (optional, pip install uvloop)",
        "rloop": "rloop is not installed (optional; env.sh installs it where it has wheels)",
        "zuvloop": "zuvloop is not installed (optional; wheels for Python 3.14+ only)",
    }
    return [
        "aloop",
        *(
            pytest.param(name, marks=pytest.mark.skipif(find_spec(name) is None, reason=why))
            for name, why in optional.items()
        ),
    ]


@pytest.mark.parametrize("loop", loops_under_test())
def test_protocol_echo_is_correct(tmp_path: Path, loop: str) -> None:
    out = tmp_path / "net.json"
    command = [sys.executable, str(NET), "--quick", "--loops", loop, "--bench", "protocol-1k"]
    proc = subprocess.run(
        [*command, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=aloop_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WRONG" not in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    assert {(r["case"], r["loop"]) for r in runs} == {("protocol-1k", loop), ("c-epoll-1k", "C")}
    for run in runs:
        assert run["status"] == "ok", run
        assert run["wrong"] == 0
        assert run["requests"] > 0
        assert run["cpu_us"] > 0


def test_ratios_pair_the_runs_of_one_round() -> None:
    import importlib

    sys.path.insert(0, str(NET.parent))
    try:
        net: Any = importlib.import_module("net")
    finally:
        sys.path.remove(str(NET.parent))

    def cell(values: list[float]) -> Any:
        made = net.Cell()
        for rep, value in enumerate(values):
            made.add({"status": "ok", "repeat": rep, "cpu_us": value, "user_us": 0.0, "rps": 1.0})
        return made

    # The machine slows down between rounds; within each round aloop is 10 % cheaper.
    other, aloop = cell([10.0, 20.0, 40.0]), cell([9.0, 18.0, 36.0])
    assert net.better_ratio(other, aloop, "cpu_us") == "1.11x"
    # One round where the machine slowed down between the two runs: the
    # medians of each side would be taken from different rounds.
    other, aloop = cell([10.0, 11.0, 40.0]), cell([9.0, 30.0, 36.0])
    assert net.better_ratio(other, aloop, "cpu_us") == "1.11x"
    assert net.ratio(other.median("cpu_us"), aloop.median("cpu_us")) == "0.37x"
