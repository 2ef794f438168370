"""Smoke test of bench/instructions.py: instruction counts under callgrind.

Checks that the callgrind.out parser finds the total and each function's own cost,
and, where valgrind is installed, that one core benchmark and one echo server give a
positive count per operation on aloop (tiny sizes: the figures mean nothing).
No count is compared with a bound: that belongs in bench/, not in a test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support import aloop_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "instructions.py"
sys.path.insert(0, str(ROOT / "bench"))

import instructions  # noqa: E402

needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (apt-get install valgrind)"
)

# A callgrind.out as valgrind 3.19 writes it: compressed names, a call whose
# inclusive cost (the line after calls=) is not the caller's own.
SAMPLE = """\
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000

ob=(1) /usr/bin/python3
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 300
+2 100
cob=(2) /lib/x.so
cfi=(2) x.c
cfn=(2) helper
calls=5 20
* 500
fn=(3) main
5 50
ob=(2)
fl=(2)
fn=(2)
20 450
-3 50

totals: 1000
"""


def test_profile_parser_separates_own_cost_from_calls(tmp_path: Path) -> None:
    path = tmp_path / "callgrind.out"
    path.write_text(SAMPLE)
    profile = instructions.read_profile(path)
    assert profile.total == 1000
    assert profile.functions == {
        "_PyEval_EvalFrameDefault [python3]": 400,
        "main [python3]": 50,
        "helper [x.so]": 500,
    }


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "instr.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--allow-pure", "--json", str(out), *args],
        capture_output=True,
        text=True,
        env=aloop_env(),
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@needs_valgrind
def test_core_count_on_aloop(tmp_path: Path) -> None:
    data = _run(
        tmp_path, "--bench", "chain", "--loops", "aloop", "--sizes", "200,1200", "--top", "5"
    )
    cell = data["cells"]["chain/aloop"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["per_op"] > 0
    assert cell["ops"] == [200, 1200]
    assert 0 < len(cell["top"]) <= 5


@needs_valgrind
@pytest.mark.skipif(
    shutil.which("gcc") is None, reason="gcc is missing: bench/net/echo_client.c cannot be built"
)
def test_echo_count_on_aloop(tmp_path: Path) -> None:
    data = _run(tmp_path, "--bench", "protocol", "--loops", "aloop", "--sizes", "50,150")
    cell = data["cells"]["protocol/aloop"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["per_op"] > 0
    assert cell["ops"][1] - cell["ops"][0] >= 100
