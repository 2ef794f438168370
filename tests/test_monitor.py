"""The monitor and ``python -m aloop``, against a real monitored program."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitored import CONNECTIONS, SERVER_PROGRAM, Program, cli, run_program

from aloop.tooling.monitor import request, socket_path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Program]:
    """An echo server with CONNECTIONS client connections held open."""
    yield from run_program(tmp_path, SERVER_PROGRAM)


def test_ps_lists_every_task_with_state_and_wait(program: Program) -> None:
    out = cli("ps", str(program.pid)).stdout
    for name in ("main", "parent", "worker-0", "worker-1", "worker-2", "victim"):
        assert name in out
    worker_line = next(line for line in out.splitlines() if "worker-1" in line)
    assert "waiting" in worker_line and "sleep until" in worker_line and "parent" in worker_line
    # monitor=True counts no steps: the table says so rather than show zeros.
    assert request(program.pid, {"cmd": "ps"})["counted"] is False
    assert "not counted" in " ".join(out.split())


def test_pstree_nests_children_under_parents(program: Program) -> None:
    lines = cli("pstree", str(program.pid)).stdout.splitlines()
    parent = next(i for i, line in enumerate(lines) if "parent [waiting]" in line)
    worker = next(i for i, line in enumerate(lines) if "worker-2 [waiting]" in line)
    indent = lines[worker].index("worker-2") - lines[parent].index("parent")
    assert worker > parent and indent > 0
    assert "worker() at " in lines[worker + 1]


def test_cancel_by_name(program: Program) -> None:
    assert "cancelling 'victim'" in cli("cancel", str(program.pid), "victim").stdout
    assert program.readline() == "victim cancelled"
    failed = cli("cancel", str(program.pid), "victim", check=False)
    assert failed.returncode == 1 and "no pending task named 'victim'" in failed.stderr


def test_ps_answers_while_the_loop_is_blocked(program: Program, tmp_path: Path) -> None:
    flag = tmp_path / "release"
    program.send(f"block {flag}")
    assert program.readline() == "blocking"
    try:
        # The view says BLOCKED once the block passes the watchdog's 0.1 s
        # threshold; ask until it does (each answer comes while blocked).
        for _ in range(50):
            out = cli("ps", str(program.pid)).stdout
            if "BLOCKED" in out:
                break
    finally:
        flag.touch()
    assert "BLOCKED" in out
    assert program.readline() == "unblocked"


def test_trace_from_outside(program: Program, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    result = cli("trace", str(program.pid), "--seconds", "0.3", "-o", str(out))
    assert result.stdout.startswith("wrote ")
    data = json.loads(out.read_text())
    assert data["traceEvents"][0]["ph"] == "M"
    assert any(e["name"] == "I/O wait" for e in data["traceEvents"])


def test_top_refreshes(program: Program) -> None:
    out = cli("top", str(program.pid), "--interval", "0.05", "--iterations", "2").stdout
    assert "worker-0" in out


def test_socket_is_private(program: Program) -> None:
    path = socket_path(program.pid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_no_monitor_is_a_clear_error() -> None:
    result = cli("ps", "999999999", check=False)
    assert result.returncode == 1
    assert "no aloop monitor for process 999999999" in result.stderr


def test_server_with_many_connections(server: Program) -> None:
    # The monitor's reply: aloop.inspect's rows, as the CLI and the web page get them.
    rows = {row["name"]: row for row in request(server.pid, {"cmd": "ps"})["tasks"]}
    handlers = [row for name, row in rows.items() if name.startswith("conn-")]
    clients = [row for name, row in rows.items() if name.startswith("client-")]
    assert len(handlers) == len(clients) == CONNECTIONS
    for row in handlers:
        # asyncio starts a handler from the listening socket's accept callback,
        # not from a task: handlers are roots of the tree.
        assert row["state"] == "waiting" and row["parent"] is None
        assert row["awaiting"].startswith("<Future pending")
        assert row["stack"][0].startswith("handle() at ")
        assert any(frame.startswith("readline() at ") for frame in row["stack"])
    for row in clients:
        assert row["state"] == "waiting" and row["parent"] == "main"
        assert any(frame.startswith("read() at ") for frame in row["stack"])
    assert {f"client-{i}" for i in range(CONNECTIONS)} <= set(rows["main"]["children"])

    out = cli("ps", str(server.pid)).stdout
    lines = [line for line in out.splitlines() if " conn-" in f" {line}"]
    assert len(lines) == CONNECTIONS
    assert all("waiting" in line and "<Future pending" in line for line in lines)
    tree = cli("pstree", str(server.pid)).stdout
    assert "handle() at " in tree and tree.count("conn-") == CONNECTIONS
