"""The README's main job: the demo runs on aloop and matches the stdlib loop."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


def _warn_if_pure(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run scripts/demo.sh's check on this Python, as the demo does after building."""
    script = f'source "{ROOT}/scripts/demo.sh" && warn_if_pure "$0"'
    return subprocess.run(
        ["bash", "-c", script, sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_demo_warns_when_aloop_fell_back_to_pure_python() -> None:
    # The source tree has no compiled modules: what a build without a compiler installs.
    env = {k: v for k, v in os.environ.items() if k != "ALOOP_PURE"}
    env["PYTHONPATH"] = os.path.join(ROOT, "src")
    proc = _warn_if_pure(env)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: aloop is NOT compiled: the build fell back to pure Python" in proc.stderr
    assert "C compiler" in proc.stderr
    assert proc.stdout == ""


def test_demo_says_when_pure_python_was_asked_for() -> None:
    env = dict(os.environ, ALOOP_PURE="1", PYTHONPATH=os.path.join(ROOT, "src"))
    proc = _warn_if_pure(env)
    assert proc.returncode == 0, proc.stderr
    assert "ALOOP_PURE=1 is set" in proc.stderr
    assert "WARNING" not in proc.stderr


def test_demo_is_quiet_when_compiled() -> None:
    import aloop

    if not aloop.COMPILED:
        pytest.skip("needs a compiled aloop (this run is interpreted)")
    proc = _warn_if_pure(dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
