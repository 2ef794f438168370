"""Smoke test of the network benchmark: bench/net.py --quick on one echo case, aloop only.

Checks that the aloop protocol echo server and the C reference served requests and that
every echoed byte was right. No timing assertions: figures on a shared machine are noise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import aloop_env

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


def test_protocol_echo_on_aloop_is_correct(tmp_path: Path) -> None:
    out = tmp_path / "net.json"
    command = [sys.executable, str(NET), "--quick", "--loops", "aloop", "--bench", "protocol-1k"]
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
    assert {(r["case"], r["loop"]) for r in runs} == {("protocol-1k", "aloop"), ("c-epoll-1k", "C")}
    for run in runs:
        assert run["status"] == "ok", run
        assert run["wrong"] == 0
        assert run["requests"] > 0
        assert run["cpu_us"] > 0
