"""Soak: an echo server on each loop under churning load; nothing may be lost or leaked.

    python bench/soak.py --seconds 600 --conns 10000              # the record run
    python bench/soak.py --seconds 5 --conns 200 --workers 2      # short mode (the tests)
    python bench/soak.py --serve aloop --kinds streams,unix       # one server, by hand

The server process (``--serve LOOP``) listens once per kind: ``streams``
(``asyncio.start_server`` on TCP), ``protocol`` (an ``asyncio.Protocol`` on TCP, with
``pause_reading`` on ``pause_writing``), ``tls`` (streams over TLS) and ``unix``
(the protocol on a UNIX socket). Load comes from ``--workers`` client processes
(``--client``, always the stdlib loop) holding ``--conns`` connections in all, each slot
reconnecting until ``--seconds`` are up. Every connection plays one scenario: echo
(1-4 messages), half-close (``write_eof``, then read to EOF), abort (RST by
``SO_LINGER`` 0 part-way through the echo) or slow reader (a small receive buffer and a
pause after every 16 KiB, so the server's flow control engages). Message sizes are
log-uniform from 1 B to 1 MiB; every echoed byte is compared with the seeded random
bytes sent. The server counts its fds (``/proc/self/fd``), tasks, transports (the loop's
registry) and RSS before the load and after every connection has closed.
The exit status is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("streams", "protocol", "tls", "unix")
SCENARIOS = ("echo", "half", "abort", "slow")
WEIGHTS = (55, 15, 15, 15)
MAX_SIZE = 1 << 20
IO_TIMEOUT = 120.0  # one connection's whole life; a stuck echo is counted, not waited for
SLOW_CHUNK = 16384
SLOW_PAUSE = 0.003
DRAIN_TIMEOUT = 60.0  # how long the server waits for its connections to close at the end

# Faults the server plants on purpose (--inject, for the tests of the checks themselves).
INJECT: set[str] = set()
INJECT_ANY = False

HERE = Path(__file__).resolve().parent


def raise_nofile() -> int:
    """Raise the soft fd limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# -- certificates -----------------------------------------------------------------------


def server_ssl_context(directory: Path) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate (openssl, or CPython's)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    try:
        subprocess.run(
            [*openssl, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        from test.test_asyncio import utils  # type: ignore[import-not-found]

        return utils.simple_server_sslcontext()  # type: ignore[no-any-return]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_ssl_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the soak checks bytes, not certificates
    return ctx


# -- the server -------------------------------------------------------------------------


class ServerStats:
    def __init__(self) -> None:
        self.conns = 0
        self.active = 0
        self.bytes = 0
        self.pauses = 0
        self.benign = 0  # resets and the like from the aborting peers
        self.errors: list[str] = []
        self.leaked: list[object] = []
        self.benign_kinds: dict[str, int] = {}  # the loop's reports of resets and the like

    def error(self, what: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(what)
        else:
            self.errors[-1] = f"... and more ({what})"


BENIGN = (ConnectionError, ssl.SSLError, TimeoutError, OSError)


class EchoProtocol(asyncio.Protocol):
    """Echo with flow control: stop reading while the peer is not reading."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.keep_open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.conns += 1
        self.stats.active += 1
        if "leak" in INJECT:
            INJECT.discard("leak")
            task = asyncio.ensure_future(asyncio.sleep(3600))
            self.stats.leaked = [task, os.open(os.devnull, 0), transport]
            self.keep_open = True  # and this connection is never closed

    def data_received(self, data: bytes) -> None:
        self.stats.bytes += len(data)
        assert self.transport is not None
        if "corrupt" in INJECT:
            INJECT.discard("corrupt")
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.transport.write(data)

    def eof_received(self) -> bool:
        return self.keep_open  # False: the transport closes once the echo is flushed

    def pause_writing(self) -> None:
        self.stats.pauses += 1
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.active -= 1
        if exc is not None and not isinstance(exc, BENIGN):
            self.stats.error(f"connection_lost: {exc!r}")


def stream_handler(stats: ServerStats) -> Callable[..., Any]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats.conns += 1
        stats.active += 1
        try:
            while data := await reader.read(65536):
                stats.bytes += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except BENIGN:
            stats.benign += 1
        except Exception as exc:  # counted and reported: a soak failure
            stats.error(f"stream handler: {exc!r}")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except BENIGN:
                stats.benign += 1
            stats.active -= 1

    return echo


def snapshot(loop: asyncio.AbstractEventLoop) -> dict[str, int]:
    """fds, tasks, transports and memory of this server process."""
    gc.collect()
    registry = getattr(loop, "_net_transports", None)  # aloop's
    if registry is None:
        registry = getattr(loop, "_transports", None)  # the stdlib selector loop's
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks(loop)),
        "transports": 0 if registry is None else len(registry),
        **rss_kib(),
    }


async def open_servers(
    kinds: list[str], directory: Path, stats: ServerStats
) -> tuple[list[asyncio.Server], dict[str, Any]]:
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    addresses: dict[str, Any] = {}
    handler = stream_handler(stats)
    for kind in kinds:
        if kind == "streams":
            server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=4096)
        elif kind == "tls":
            ctx = server_ssl_context(directory)
            server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx, backlog=4096)
        elif kind == "protocol":
            server = await loop.create_server(
                lambda: EchoProtocol(stats), "127.0.0.1", 0, backlog=4096
            )
        elif kind == "unix":
            path = str(directory / "soak.sock")
            server = await loop.create_unix_server(lambda: EchoProtocol(stats), path, backlog=4096)
        else:
            raise SystemExit(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        servers.append(server)
        name = server.sockets[0].getsockname()
        addresses[kind] = name if kind == "unix" else list(name)
    return servers, addresses


async def serve_main(kinds: list[str], directory: Path) -> dict[str, Any]:
    """Serve until stdin closes, then wait for the connections to go and count what is left."""
    loop = asyncio.get_running_loop()
    stats = ServerStats()

    def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BENIGN):
            stats.benign += 1
            what = f"{context.get('message')}: {type(exc).__name__}"
            stats.benign_kinds[what] = stats.benign_kinds.get(what, 0) + 1
        else:
            stats.error(
                f"loop exception handler: {context.get('message')} {context.get('exception')!r}"
            )

    loop.set_exception_handler(on_error)
    servers, addresses = await open_servers(kinds, directory, stats)
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    await asyncio.sleep(0)
    before = snapshot(loop)
    print("READY " + json.dumps(addresses), flush=True)
    await stdin_closed
    deadline = loop.time() + (1.0 if INJECT_ANY else DRAIN_TIMEOUT)
    # Bounded wait for the server side of the last connections to finish closing.
    while loop.time() < deadline:
        if stats.active == 0 and snapshot(loop)["transports"] <= before["transports"]:
            break
        await asyncio.sleep(0.05)
    for _ in range(5):  # let the closed transports' last callbacks run
        await asyncio.sleep(0)
    after = snapshot(loop)
    for server in servers:
        server.close()
        try:  # wait_closed waits for the connections too (3.12+): a leaked one never goes
            await asyncio.wait_for(server.wait_closed(), 0.5 if INJECT_ANY else 5.0)
        except TimeoutError:
            stats.error("server.wait_closed() did not return")
    return {
        "conns": stats.conns,
        "bytes": stats.bytes,
        "active": stats.active,
        "pauses": stats.pauses,
        "benign": stats.benign,
        "benign_kinds": stats.benign_kinds,
        "errors": stats.errors,
        "before": before,
        "after": after,
    }


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    module = __import__(name)
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def serve(loop_name: str, kinds: list[str], directory: Path, inject: str) -> int:
    raise_nofile()
    global INJECT_ANY
    INJECT.update(filter(None, inject.split(",")))
    INJECT_ANY = bool(INJECT)
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        result = runner.run(serve_main(kinds, directory))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# -- the load generator -----------------------------------------------------------------


class ClientStats:
    def __init__(self) -> None:
        self.conns = 0
        self.sent = 0
        self.received = 0
        self.corrupt = 0
        self.lost = 0
        self.errors = 0
        self.stuck = 0
        self.biggest = 0
        self.scenarios = dict.fromkeys(SCENARIOS, 0)
        self.messages: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.messages) < 10:
            self.messages.append(what)


def message(rng: random.Random, low: int = 0) -> bytes:
    """Seeded random bytes, log-uniform size in [1 B, 1 MiB]: most small, some large."""
    size = max(int(2 ** rng.uniform(low, 20)), 1)
    return rng.randbytes(min(size, MAX_SIZE))


async def read_checked(
    reader: asyncio.StreamReader, expected: bytes, stats: ClientStats, slow: bool
) -> int:
    """Read len(expected) bytes, counting corrupt ones and lost ones (EOF too early)."""
    pos = 0
    while pos < len(expected):
        want = min(len(expected) - pos, SLOW_CHUNK if slow else 1 << 18)
        chunk = await reader.read(want)
        if not chunk:
            stats.lost += len(expected) - pos
            return pos
        if chunk != expected[pos : pos + len(chunk)]:
            stats.corrupt += sum(a != b for a, b in zip(chunk, expected[pos:], strict=False))
        pos += len(chunk)
        stats.received += len(chunk)
        if slow:
            await asyncio.sleep(SLOW_PAUSE)
    return pos


async def connect(
    kind: str, address: Any, slow: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if slow:  # a small window, so the echo backs up into the server
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, address if kind == "unix" else tuple(address))
        if kind == "unix":
            return await asyncio.open_unix_connection(sock=sock)
        if kind == "tls":
            return await asyncio.open_connection(
                sock=sock, ssl=client_ssl_context(), server_hostname="localhost"
            )
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


def send(writer: asyncio.StreamWriter, data: bytes, rng: random.Random, stats: ClientStats) -> None:
    """Write ``data`` in a few pieces (the transport buffers them; the caller reads)."""
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 3)))
    start = 0
    for end in [*cuts, len(data)]:
        writer.write(data[start:end])
        start = end
    stats.sent += len(data)
    stats.biggest = max(stats.biggest, len(data))


async def play(
    scenario: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    rng: random.Random,
    stats: ClientStats,
    big: bool,
) -> None:
    if scenario == "abort":
        data = message(rng, low=10)
        send(writer, data, rng, stats)
        await read_checked(reader, data[: rng.randrange(len(data))], stats, slow=False)
        sock = writer.get_extra_info("socket")
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return
    if scenario == "half":
        data = message(rng)
        send(writer, data, rng, stats)
        writer.write_eof()
        await read_checked(reader, data, stats, slow=False)
        extra = await reader.read()
        stats.corrupt += len(extra)  # nothing may follow the echo
    else:
        for i in range(1 if scenario == "slow" else rng.randint(1, 4)):
            data = message(rng, low=16 if scenario == "slow" else 0)
            if big and i == 0:
                data = rng.randbytes(MAX_SIZE)
            send(writer, data, rng, stats)
            await read_checked(reader, data, stats, slow=scenario == "slow")
            await writer.drain()
    writer.close()
    await writer.wait_closed()


async def one_connection(
    kind: str, address: Any, rng: random.Random, stats: ClientStats, big: bool
) -> None:
    scenario = "echo" if big else rng.choices(SCENARIOS, WEIGHTS)[0]
    if scenario == "half" and kind == "tls":
        scenario = "echo"  # TLS has no half-close
    started = time.monotonic()
    try:
        reader, writer = await connect(kind, address, slow=scenario == "slow")
    except OSError as exc:
        stats.error(f"connect {kind} ({time.monotonic() - started:.1f} s): {exc!r}")
        return
    connected = time.monotonic()
    stats.conns += 1
    stats.scenarios[scenario] += 1
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            await play(scenario, reader, writer, rng, stats, big)
    except TimeoutError:
        stats.stuck += 1
        stats.error(f"{kind}/{scenario}: no progress for {IO_TIMEOUT} s")
    except (OSError, ssl.SSLError) as exc:
        took = (
            f"connected in {connected - started:.1f} s, failed {time.monotonic() - started:.1f} s"
        )
        stats.error(f"{kind}/{scenario} ({took}): {exc!r}")
    finally:
        writer.transport.abort()  # a no-op after a clean close; frees a stuck one


async def slot(
    index: int, seed: int, addresses: dict[str, Any], deadline: float, stats: ClientStats
) -> None:
    """One connection at a time until the deadline, cycling through the kinds."""
    rng = random.Random(seed * 1_000_003 + index)
    loop = asyncio.get_running_loop()
    kinds = sorted(addresses)
    await asyncio.sleep(rng.random() * min(1.0, (deadline - loop.time()) / 4))  # stagger
    n = 0
    while n == 0 or loop.time() < deadline:
        kind = kinds[(index + n) % len(kinds)]
        await one_connection(kind, addresses[kind], rng, stats, big=index == 0 and n == 0)
        n += 1


async def client_main(addresses: dict[str, Any], conns: int, seconds: float, seed: int) -> None:
    stats = ClientStats()
    deadline = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(slot(i, seed, addresses, deadline, stats) for i in range(conns)))
    print("RESULT " + json.dumps(vars(stats)), flush=True)


def client(addresses: str, conns: int, seconds: float, seed: int, io_timeout: float) -> int:
    global IO_TIMEOUT
    IO_TIMEOUT = io_timeout
    raise_nofile()
    asyncio.run(client_main(json.loads(addresses), conns, seconds, seed))
    return 0


# -- the driver -------------------------------------------------------------------------


def result_line(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise RuntimeError(f"no RESULT line in: {out[-2000:]}")


def run_one(loop_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One server on ``loop_name`` and its load; the merged figures."""
    me = [sys.executable, str(Path(__file__).resolve())]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        server = subprocess.Popen(
            [
                *me,
                "--serve",
                loop_name,
                "--kinds",
                args.kinds,
                "--dir",
                tmp,
                "--inject",
                args.inject,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        clients: list[subprocess.Popen[str]] = []
        try:
            assert server.stdout is not None and server.stdin is not None
            ready = server.stdout.readline()
            if not ready.startswith("READY "):
                raise RuntimeError(f"server did not start: {ready!r}")
            addresses = ready[6:].strip()
            shares = [
                args.conns // args.workers + (i < args.conns % args.workers)
                for i in range(args.workers)
            ]
            for i, share in enumerate(shares):
                clients.append(
                    subprocess.Popen(
                        [
                            *me,
                            "--client",
                            addresses,
                            "--conns",
                            str(share),
                            "--seconds",
                            str(args.seconds),
                            "--seed",
                            str(args.seed * 100 + i),
                            "--io-timeout",
                            str(args.io_timeout),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            wait = args.seconds + args.io_timeout + 60
            outs = [c.communicate(timeout=wait)[0] for c in clients]
            loads = [result_line(out) for out in outs]
            served = result_line(server.communicate("", timeout=DRAIN_TIMEOUT + 60)[0])
        finally:
            for proc in [*clients, server]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return merge(loop_name, loads, served, time.monotonic() - started)


def merge(
    loop_name: str, loads: list[dict[str, Any]], served: dict[str, Any], duration: float
) -> dict[str, Any]:
    total = {
        key: sum(load[key] for load in loads)
        for key in ("conns", "sent", "received", "corrupt", "lost", "errors", "stuck")
    }
    total["biggest"] = max(load["biggest"] for load in loads)
    scenarios = {s: sum(load["scenarios"][s] for load in loads) for s in SCENARIOS}
    before, after = served["before"], served["after"]
    return {
        "loop": loop_name,
        "duration_s": round(duration, 1),
        **total,
        "scenarios": scenarios,
        "client_messages": [m for load in loads for m in load["messages"]][:10],
        "server_conns": served["conns"],
        "server_bytes": served["bytes"],
        "server_pauses": served["pauses"],
        "server_errors": served["errors"],
        "server_resets": served["benign_kinds"],
        "server_active": served["active"],
        "fds_leaked": after["fds"] - before["fds"],
        "tasks_leaked": after["tasks"] - before["tasks"],
        "transports_leaked": after["transports"] - before["transports"],
        "rss_before_kib": before["VmRSS"],
        "rss_growth_kib": after["VmRSS"] - before["VmRSS"],
        "rss_peak_kib": after["VmHWM"],
        "server_before": before,
        "server_after": after,
    }


def failures(run: dict[str, Any], rss_limit_mib: float) -> list[str]:
    """What went wrong in one loop's run (empty: it passed)."""
    bad = [
        f"{key} = {run[key]}"
        for key in (
            "corrupt",
            "lost",
            "errors",
            "stuck",
            "fds_leaked",
            "tasks_leaked",
            "transports_leaked",
            "server_active",
        )
        if run[key] != 0
    ]
    if run["server_errors"]:
        bad.append(f"server errors: {run['server_errors']}")
    if run["client_messages"]:
        bad.append(f"client errors: {run['client_messages']}")
    if run["conns"] == 0 or run["server_conns"] < run["conns"]:
        bad.append(f"connections: client {run['conns']}, server {run['server_conns']}")
    if run["rss_growth_kib"] > rss_limit_mib * 1024:
        bad.append(f"RSS grew by {run['rss_growth_kib']} KiB > {rss_limit_mib} MiB")
    return bad


ROWS = (
    ("connections", "conns"),
    ("bytes sent", "sent"),
    ("bytes echoed", "received"),
    ("corrupt bytes", "corrupt"),
    ("lost bytes", "lost"),
    ("client errors", "errors"),
    ("stuck", "stuck"),
    ("server pauses", "server_pauses"),
    ("fds leaked", "fds_leaked"),
    ("tasks leaked", "tasks_leaked"),
    ("transports leaked", "transports_leaked"),
    ("RSS before KiB", "rss_before_kib"),
    ("RSS growth KiB", "rss_growth_kib"),
    ("RSS peak KiB", "rss_peak_kib"),
    ("duration s", "duration_s"),
)


def table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'':20}" + "".join(f"{run['loop']:>24}" for run in runs)]
    for label, key in ROWS:
        lines.append(f"{label:20}" + "".join(f"{run[key]:>24}" for run in runs))
    lines.append(
        f"{'scenarios':20}"
        + "".join(f"{'/'.join(str(v) for v in run['scenarios'].values()):>24}" for run in runs)
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--loops", default="aloop,asyncio", help="servers' loops, comma-separated")
    add("--kinds", default=",".join(KINDS), help="listeners: streams,protocol,tls,unix")
    add("--conns", type=int, default=200, help="concurrent connections in all")
    add("--workers", type=int, default=2, help="load-generating processes")
    add("--seconds", type=float, default=5.0, help="how long connections are churned")
    add("--seed", type=int, default=1)
    add("--rss-limit", type=float, help="allowed RSS growth, MiB (128 + 1 per connection)")
    add("--json", help="write the figures here")
    add("--serve", metavar="LOOP", help=argparse.SUPPRESS)
    add("--dir", help=argparse.SUPPRESS)
    add("--client", metavar="ADDRESSES", help=argparse.SUPPRESS)
    add("--inject", default="", help=argparse.SUPPRESS)  # corrupt,leak: prove the checks bite
    add("--io-timeout", type=float, default=120.0, help="a connection counts as stuck after this")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        directory = Path(args.dir or tempfile.mkdtemp(prefix="soak-"))
        return serve(args.serve, args.kinds.split(","), directory, args.inject)
    if args.client:
        return client(args.client, args.conns, args.seconds, args.seed, args.io_timeout)
    limit = raise_nofile()
    if args.conns + 100 > limit:
        raise SystemExit(f"--conns {args.conns} needs more fds than RLIMIT_NOFILE allows ({limit})")
    if args.rss_limit is None:  # what buffers of that many connections may keep from the OS
        args.rss_limit = 128 + args.conns  # 1 MiB a connection, its largest message
    runs, status = [], 0
    for loop_name in args.loops.split(","):
        run = run_one(loop_name, args)
        run["failures"] = failures(run, args.rss_limit)
        runs.append(run)
    print(
        f"soak: {args.conns} connections, {args.seconds} s, kinds {args.kinds}, "
        f"{args.workers} client processes, Python {sys.version.split()[0]}"
    )
    print("scenarios: " + "/".join(SCENARIOS))
    print(table(runs))
    for run in runs:
        for failure in run["failures"]:
            print(f"FAIL {run['loop']}: {failure}")
            status = 1
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
