"""Dask on aloop: CPU work sent to a cluster, and a cluster running on aloop.

Two clusters start in this file. One is a scheduler and a worker, each in its
own process under ``aloop.run`` (module fixture ``aloop_cluster``): clients on
the stdlib loop and on aloop (the ``loop_factory`` fixture) send it the guide's
CPU work through ``loop.run_in_executor(client.get_executor(), ...)`` and
through the async Client API. The other is the LocalCluster that
examples/dask_cpu.py starts inside its aloop program.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.support import LoopFactory, aloop_env

import aloop

distributed = pytest.importorskip("distributed", reason="dask is a dev dependency (scripts/env.sh)")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 120  # seconds; cluster starts are slow on a busy 2-core machine


def load_example() -> ModuleType:
    """examples/dask_cpu.py as the module ``dask_cpu``.

    Its functions travel to the workers pickled by reference, so the cluster
    processes import the same module (examples/ is on their PYTHONPATH).
    """
    spec = importlib.util.spec_from_file_location("dask_cpu", EXAMPLES / "dask_cpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dask_cpu"] = module
    spec.loader.exec_module(module)
    return module


example = load_example()
NS = (18, 19, 20, 21)
FIBS = [example.fib(n) for n in NS]
ALOOP = "aloop.loop.Loop"

# One role per process: the scheduler prints its address, then both run until
# the scheduler closes (SIGTERM, as the `dask scheduler` CLI waits for it).
SERVE = textwrap.dedent(
    """
    import asyncio, sys
    import aloop
    from distributed import Scheduler, Worker
    from distributed._signals import wait_for_signals

    async def serve(role, address):
        if role == "scheduler":
            server = Scheduler(host="127.0.0.1", port=0, dashboard_address=None)
        else:
            server = Worker(address, nthreads=1, host="127.0.0.1", dashboard_address=None)
        async with server:
            print(server.address, flush=True)
            signals = asyncio.create_task(wait_for_signals())
            finished = asyncio.create_task(server.finished())
            await asyncio.wait([signals, finished], return_when=asyncio.FIRST_COMPLETED)
            if signals.done():
                await server.close(reason="signal")
            signals.cancel()
        print("stopped on", type(asyncio.get_running_loop()).__module__, flush=True)

    aloop.run(serve(*sys.argv[1:]))
    """
)


def cluster_env() -> dict[str, str]:
    """A child's environment: aloop importable, dask's INFO lines (not about aloop) off."""
    env = aloop_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p)
    env["DASK_LOGGING__DISTRIBUTED"] = "warning"
    return env


@dataclass
class Role:
    """One cluster process: its Popen and where its stderr goes."""

    proc: subprocess.Popen[str]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_role(role: str, address: str, log: Path) -> Role:
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, role, address],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=cluster_env(),
            cwd=ROOT,
        )
    return Role(proc, log)


def first_line(role: Role) -> str:
    """The address the process printed once serving (one flushed line)."""
    assert role.proc.stdout is not None
    ready, _, _ = select.select([role.proc.stdout], [], [], TIMEOUT)
    assert ready, f"not serving after {TIMEOUT} s; stderr:\n{role.stderr()}"
    line = role.proc.stdout.readline().strip()
    assert line.startswith("tcp://"), f"no address; stderr:\n{role.stderr()}"
    return line


def stop(roles: list[Role]) -> dict[str, Any]:
    """SIGTERM the scheduler, wait for every process; kill whatever is left."""
    outcome: dict[str, Any] = {}
    try:
        if roles and roles[0].proc.poll() is None:
            roles[0].proc.send_signal(signal.SIGTERM)
        for name, role in zip(("scheduler", "worker"), roles, strict=False):
            out, _ = role.proc.communicate(timeout=TIMEOUT)
            outcome[name] = (role.proc.returncode, out.strip().splitlines()[-1:], role.stderr())
    finally:
        for role in roles:
            if role.proc.poll() is None:
                role.proc.kill()
                role.proc.communicate()
    return outcome


@dataclass
class Cluster:
    address: str
    worker_pid: int


@pytest.fixture(scope="module")
def aloop_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler and a one-thread worker, each under ``aloop.run`` in its own process.

    Teardown checks that both stopped cleanly: the scheduler on SIGTERM, the
    worker when its scheduler closed.
    """
    logs = tmp_path_factory.mktemp("dask")
    roles = [start_role("scheduler", "", logs / "scheduler.err")]
    try:
        address = first_line(roles[0])
        roles.append(start_role("worker", address, logs / "worker.err"))
        first_line(roles[1])
        yield Cluster(address, roles[1].proc.pid)
    finally:
        outcome = stop(roles)
    for name, (code, last, err) in outcome.items():
        assert (code, last) == (0, ["stopped on aloop.loop"]), f"{name}: {code} {last}\n{err}"


async def in_executor(address: str) -> dict[str, Any]:
    """The guide's process-pool pattern with a sync Client's executor."""
    loop = asyncio.get_running_loop()
    with distributed.Client(address, timeout="60s") as client:
        executor = client.get_executor()
        jobs = (loop.run_in_executor(executor, example.fib, n) for n in NS)
        results = await asyncio.gather(*jobs)
        pid = await loop.run_in_executor(executor, os.getpid)
        with pytest.raises(ValueError, match="invalid literal"):
            await loop.run_in_executor(executor, int, "x")
    return {"results": results, "pid": pid, "loop": example.loop_name()}


@pytest.mark.usefixtures("no_fd_leak")
def test_run_in_executor(loop_factory: LoopFactory, aloop_cluster: Cluster) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        got = runner.run(in_executor(aloop_cluster.address))
    assert got["results"] == FIBS
    assert got["pid"] == aloop_cluster.worker_pid  # the work ran on the Dask worker
    assert (got["loop"] == ALOOP) == (loop_factory is aloop.new_event_loop)


async def async_client(address: str) -> dict[str, Any]:
    """Dask's async Client API on the running loop, and its executor."""
    loop = asyncio.get_running_loop()
    fib = example.fib
    async with distributed.Client(address, asynchronous=True, timeout="60s") as client:
        assert client.loop.asyncio_loop is loop  # tornado's IOLoop wraps this loop
        one = await client.submit(fib, NS[0])
        many = await client.gather(client.map(fib, NS))
        done = sorted([await f async for f in distributed.as_completed(client.map(fib, NS))])
        executor = client.get_executor()
        pooled = await asyncio.gather(*(loop.run_in_executor(executor, fib, n) for n in NS))
        pid = await loop.run_in_executor(executor, os.getpid)
        with pytest.raises(ValueError, match="invalid literal"):
            await client.submit(int, "y")
        workers = await client.run(example.loop_name)
        scheduler = await client.run_on_scheduler(example.loop_name)
    return {
        "one": one,
        "many": many,
        "done": done,
        "pooled": pooled,
        "pid": pid,
        "workers": list(workers.values()),
        "scheduler": scheduler,
    }


@pytest.mark.usefixtures("no_fd_leak")
def test_async_client(loop_factory: LoopFactory, aloop_cluster: Cluster) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        got = runner.run(async_client(aloop_cluster.address))
    # The scheduler and the worker report aloop's loop whatever the client runs on.
    assert got == {
        "one": FIBS[0],
        "many": FIBS,
        "done": sorted(FIBS),
        "pooled": FIBS,
        "pid": aloop_cluster.worker_pid,
        "workers": [ALOOP],
        "scheduler": ALOOP,
    }


def test_example_local_cluster() -> None:
    """examples/dask_cpu.py: a LocalCluster inside an aloop program."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "dask_cpu.py")],
        capture_output=True,
        text=True,
        env=cluster_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[:5] == [
        f"this program's loop: {ALOOP}",
        "run_in_executor: fib(20, 21, 22, 23) = [6765, 10946, 17711, 28657]",
        "client.submit: sum = 64079",
        "client.map: squares = [400, 441, 484, 529]",
        f"scheduler's loop: {ALOOP}",
    ]
    # Each worker process runs on the loop Dask picks there, not on aloop.
    assert len(lines) == 7 and all(line.startswith("worker's loop: ") for line in lines[5:])
