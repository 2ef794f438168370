"""The README's main job: the demo runs on aloop and matches the stdlib loop."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_and_agrees_with_asyncio() -> None:
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "consumer got [0, 1, 4, 9, 16]" in out
    assert "processes computed fib(20), fib(22) = [6765, 17711]" in out
    assert "producer   created -> running -> done (finished)" in out
    assert "printed the same." in out
