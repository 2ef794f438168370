"""Memory stays flat: many connections (TCP, TLS) and tasks, opened and finished in sequence.

Each (loop, workload) runs in a fresh process: a warm-up of the same workload
fills the caches, free lists and interned objects a loop keeps for good, then
RSS (``VmRSS``) and ``tracemalloc``'s current size are read, the measured run
goes, the garbage is collected, and both are read again. tracemalloc runs from
the start so that the warm-up's allocations are in its baseline.

```
python bench/memory.py                      # the record: 1M TCP, 10k TLS, 1M tasks per loop
python bench/memory.py --short              # what tests/test_memory.py runs
python bench/memory.py --loops aloop --kinds tcp --count 100000
```

A workload's connections are loopback ``create_connection``/``create_server``
pairs in one loop, ``--batch`` (100) at a time: the client sends 4 bytes, the
server echoes them and closes, the client waits for its ``connection_lost``.
Tasks are created ``--batch`` (1000) at a time, each awaiting ``sleep(0)``, and
gathered. ``--leak`` keeps each client transport or task in a list: the control
that shows the check sees a leak of one object per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

RECORD = {"tcp": 1_000_000, "tls": 10_000, "tasks": 1_000_000}
SHORT = {"tcp": 2000, "tls": 100, "tasks": 20_000}
BATCH = {"tcp": 100, "tls": 50, "tasks": 1000}
LEAKED: list[object] = []
# What the test suite allows: tracemalloc growth below SLACK + BOUND bytes per
# operation. The measured growth is under 1 B/op on both loops; a leak of one
# object() per operation (16 B and an 8 B list slot) exceeds it at the short
# sizes of tcp and tasks; a leaked transport or task (hundreds of bytes, TLS
# several KiB) exceeds it by far at every size.
BOUND = 8
SLACK = 16 * 1024


def rss() -> int:
    """Resident set size in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """CPython's test certificate: a server context and a client that trusts it."""
    from test.test_asyncio import utils  # type: ignore[import-not-found]

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(utils.ONLYCERT, utils.ONLYKEY)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(utils.ONLYCERT)
    return server, client


class Echo(asyncio.Protocol):
    """Server side: echo the first data, then close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)
        self.transport.close()


class Client(asyncio.Protocol):
    """Client side: collect the echo, resolve ``done`` when the server has closed."""

    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done
        self.got = b""

    def data_received(self, data: bytes) -> None:
        self.got += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.got)


class Workloads:
    """The three workloads on one loop, sharing one server."""

    def __init__(self, loop: asyncio.AbstractEventLoop, kind: str, leak: bool) -> None:
        self.loop, self.kind, self.leak = loop, kind, leak
        self.server: asyncio.Server | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.port = 0

    async def start(self) -> None:
        if self.kind == "tasks":
            return
        server_ctx = None
        if self.kind == "tls":
            server_ctx, self.client_ctx = tls_contexts()
        self.server = await self.loop.create_server(
            Echo, "127.0.0.1", 0, ssl=server_ctx, backlog=1024
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def connection(self) -> None:
        done: asyncio.Future[bytes] = self.loop.create_future()
        transport, _ = await self.loop.create_connection(
            lambda: Client(done),
            "127.0.0.1",
            self.port,
            ssl=self.client_ctx,
            server_hostname="localhost" if self.client_ctx else None,
        )
        transport.write(b"ping")
        if await done != b"ping":
            raise AssertionError("echo lost")
        if self.leak:
            LEAKED.append(transport)

    async def task(self) -> int:
        await asyncio.sleep(0)
        return 1

    async def run(self, count: int, batch: int) -> int:
        """Do ``count`` operations, ``batch`` at a time; return how many completed."""
        done = 0
        while done < count:
            n = min(batch, count - done)
            if self.kind == "tasks":
                tasks = [self.loop.create_task(self.task()) for _ in range(n)]
                if self.leak:
                    LEAKED.extend(tasks)
                done += sum(await asyncio.gather(*tasks))
            else:
                await asyncio.gather(*(self.connection() for _ in range(n)))
                done += n
        return done


def traced() -> int | None:
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None


def measure(
    loop_name: str, kind: str, count: int, batch: int, leak: bool, trace: bool = True
) -> dict[str, Any]:
    """One workload on a fresh loop: warm up, measure, return the figures."""
    import aloop

    factory: Callable[[], asyncio.AbstractEventLoop] = (
        aloop.new_event_loop if loop_name == "aloop" else asyncio.new_event_loop
    )
    if trace:
        tracemalloc.start()
    loop = factory()
    work = Workloads(loop, kind, leak)

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return loop.run_until_complete(coro)

    try:
        run(work.start())
        run(work.run(max(min(count // 10, 20_000), 2 * batch), batch))  # warm-up
        gc.collect()
        rss0, traced0 = rss(), traced()
        t0 = time.perf_counter()
        ops = run(work.run(count, batch))
        seconds = time.perf_counter() - t0
        gc.collect()
        rss1, traced1 = rss(), traced()
        run(work.stop())
    finally:
        loop.close()
    return {
        "loop": loop_name,
        "kind": kind,
        "compiled": bool(getattr(aloop, "COMPILED", False)),
        "python": sys.version.split()[0],
        "ops": ops,
        "seconds": round(seconds, 2),
        "rss_before": rss0,
        "rss_after": rss1,
        "traced_before": traced0,
        "traced_after": traced1,
        "rss_per_op": (rss1 - rss0) / ops,
        "traced_per_op": None if traced0 is None or traced1 is None else (traced1 - traced0) / ops,
    }


def within_bound(r: dict[str, Any]) -> bool:
    """Whether the measured run's traced growth is what no leak looks like."""
    return bool(r["traced_after"] - r["traced_before"] < SLACK + BOUND * r["ops"])


def spawn(
    loop: str,
    kind: str,
    count: int,
    batch: int,
    leak: bool = False,
    env: dict[str, str] | None = None,
    trace: bool = True,
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (this Python, this or ``env``'s environment)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", loop, kind, str(count)]
    cmd += ["--batch", str(batch)] + (["--leak"] if leak else [])
    cmd += [] if trace else ["--no-trace"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600, env=env)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def row(r: dict[str, Any]) -> str:
    mb = 1024 * 1024
    per_m = 1_000_000
    if r["traced_per_op"] is None:
        traced = "  traced -"
    else:
        traced = (
            f"  traced {r['traced_before'] / mb:6.2f} -> {r['traced_after'] / mb:6.2f} MiB"
            f" ({r['traced_per_op'] * per_m / 1024:+9.1f} KiB/M)"
        )
    return (
        f"{r['loop']:8} {r['kind']:6} {r['ops']:>9,} {r['seconds']:>8.1f}s"
        f" rss {r['rss_before'] / mb:7.1f} -> {r['rss_after'] / mb:7.1f} MiB"
        f" ({r['rss_per_op'] * per_m / mb:+8.2f} MiB/M)" + traced
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", nargs=3, metavar=("LOOP", "KIND", "COUNT"), help=argparse.SUPPRESS)
    p.add_argument("--loops", default="asyncio,aloop")
    p.add_argument("--kinds", default="tcp,tls,tasks")
    p.add_argument("--count", type=int, help="operations per workload (default: per kind)")
    p.add_argument("--batch", type=int, help="concurrent operations (default: per kind)")
    p.add_argument("--short", action="store_true", help="the test suite's sizes")
    p.add_argument("--leak", action="store_true", help="keep every transport/task (control)")
    p.add_argument("--no-trace", action="store_true", help="RSS only: tracemalloc off (faster)")
    p.add_argument("--json", help="write every row to this file")
    args = p.parse_args()
    if args.worker:
        loop, kind, count = args.worker
        batch = args.batch or BATCH[kind]
        r = measure(loop, kind, int(count), batch, args.leak, not args.no_trace)
        print(json.dumps(r))
        return
    sizes = SHORT if args.short else RECORD
    rows = []
    for kind in args.kinds.split(","):
        for loop in args.loops.split(","):
            count = args.count or sizes[kind]
            batch = args.batch or BATCH[kind]
            r = spawn(loop, kind, count, batch, args.leak, trace=not args.no_trace)
            print(row(r), flush=True)
            rows.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
