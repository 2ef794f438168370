"""``python -m aloop web PID`` rendered by headless Chromium: DOM and screenshot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitored import CONNECTIONS, SERVER_PROGRAM, Program, run_program

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (scripts/test.sh installs it with apt-get when it can)",
)
# Flags for a headless root run on a machine with no network but loopback.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--virtual-time-budget=4000",
]


@pytest.fixture
def page_url(program: Program) -> Iterator[str]:
    yield from serve_page(program)


@pytest.fixture
def server_page_url(tmp_path: Path) -> Iterator[str]:
    """The page of an echo server with CONNECTIONS client connections held open."""
    for server in run_program(tmp_path, SERVER_PROGRAM):
        yield from serve_page(server)


def serve_page(program: Program) -> Iterator[str]:
    web = subprocess.Popen(
        [sys.executable, "-m", "aloop", "web", str(program.pid)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert web.stdout is not None
    line = web.stdout.readline()
    assert line.startswith("serving http://127.0.0.1:"), line
    yield line.split()[1]
    web.terminate()
    web.wait(10)


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_page_renders_the_live_task_tree(page_url: str, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", page_url, tmp=tmp_path).stdout
    assert 'data-task="parent"' in dom
    # worker-1 is drawn inside parent's list item, with its state and wait.
    parent_at = dom.index('data-task="parent"')
    worker_at = dom.index('data-task="worker-1"')
    assert parent_at < worker_at < dom.index("</li>", dom.index('data-task="worker-2"'))
    assert 'class="state waiting">waiting<' in dom
    assert "awaits sleep (" in dom and "ms CPU" in dom
    assert 'id="util"' in dom


def test_screenshot_shows_the_tree(page_url: str, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image", reason="Pillow checks the screenshot")
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1100,700", page_url, tmp=tmp_path)
    image = image_module.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    # The "waiting" badges are drawn in #e67e22: the tree was rendered, not
    # just the empty page (which has no orange at all).
    orange = sum(
        count
        for count, (r, g, b) in colours
        if abs(r - 0xE6) < 12 and abs(g - 0x7E) < 12 and b < 0x40
    )
    assert orange > 500, f"only {orange} badge-coloured pixels"


def test_page_of_a_server_with_many_connections(server_page_url: str, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", server_page_url, tmp=tmp_path).stdout
    assert dom.count('data-task="conn-') == CONNECTIONS
    assert dom.count('data-task="client-') == CONNECTIONS
    # Each client is drawn inside main's list item.
    main_at = dom.index('data-task="main"')
    assert main_at < dom.index('data-task="client-7"')
    assert dom.count('class="state waiting">waiting<') >= 2 * CONNECTIONS
