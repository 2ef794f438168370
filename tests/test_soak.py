"""Short mode of the soak benchmark (bench/soak.py) on aloop and the stdlib loop.

A server per loop with all four listener kinds (streams, protocol, TLS, UNIX) under a
few seconds of churning load from two client processes: echoes, half-closes, aborts (RST)
and slow readers, one 1 MiB message at least. Nothing may be corrupt, lost or leaked.
No timing assertions; the RSS bound is generous.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support import aloop_env

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the soak reads /proc/self/fd and status"
)


def soak(tmp_path: Path, *args: str) -> tuple[int, str, list[dict[str, Any]]]:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=aloop_env(),
        check=False,
    )
    runs = json.loads(out.read_text())["runs"] if out.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, runs


def test_nothing_lost_or_leaked_on_both_loops(tmp_path: Path) -> None:
    status, output, runs = soak(
        tmp_path,
        "--loops",
        "aloop,asyncio",
        "--seconds",
        "2.5",
        "--conns",
        "80",
        "--workers",
        "2",
        "--rss-limit",
        "400",
    )
    assert status == 0, output[-4000:]
    assert [run["loop"] for run in runs] == ["aloop", "asyncio"]
    for run in runs:
        assert run["failures"] == [], run
        for key in ("corrupt", "lost", "errors", "stuck"):
            assert run[key] == 0, (key, run)
        for key in ("fds_leaked", "tasks_leaked", "transports_leaked", "server_active"):
            assert run[key] == 0, (key, run)
        assert run["conns"] >= 80 and run["server_conns"] >= run["conns"]
        assert run["received"] > 0 and run["biggest"] == 1 << 20
        assert all(run["scenarios"][s] > 0 for s in ("echo", "half", "abort", "slow")), run
        assert run["rss_growth_kib"] < 400 * 1024


@pytest.mark.parametrize("loop", ["aloop", "asyncio"])
def test_the_checks_catch_a_corrupt_byte_and_leaks(tmp_path: Path, loop: str) -> None:
    # One connection (an echo): the server flips its first byte, keeps it open, and
    # leaks a task and an fd.
    status, output, runs = soak(
        tmp_path,
        "--loops",
        loop,
        "--kinds",
        "protocol",
        "--seconds",
        "0.5",
        "--conns",
        "1",
        "--workers",
        "1",
        "--inject",
        "corrupt,leak",
    )
    assert status == 1, output[-4000:]
    (run,) = runs
    assert run["corrupt"] == 1
    assert run["tasks_leaked"] == 1
    assert run["fds_leaked"] == 2  # the fd and the connection's socket
    assert run["transports_leaked"] == 1 and run["server_active"] == 1
    assert f"FAIL {loop}: corrupt = 1" in output
