"""Throwaway PostgreSQL and Redis servers on loopback for the library tests.

Each is started once per test session, in a temporary directory, on a free
port, and stopped at the end. When one cannot be started, its tests skip with
the reason, except under ``ALOOP_REQUIRE_SERVICES=1`` (scripts/test.sh sets it
after installing both), where they fail: CI must run them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 30.0
# Loopback TCP only; nothing kept on disk that a test could wait for.
POSTGRES_SETTINGS = [
    *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
    *("-c", "fsync=off", "-c", "full_page_writes=off"),
]
REDIS_SETTINGS = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--unixsocket", ""]


@dataclass(frozen=True)
class Service:
    """Where a started server listens."""

    host: str
    port: int
    user: str = ""


class ServiceUnavailable(Exception):
    """A server could not be found or started; the message says why."""


Starter = Callable[[Path], Generator[Service, None, None]]


def unavailable(reason: str) -> None:
    """Skip the test, or fail it where the test command promised the services."""
    if os.environ.get("ALOOP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"ALOOP_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bindir() -> Path:
    """The newest PostgreSQL server's bin/ (Debian's layout), else initdb's on PATH."""
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs.sort(key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for candidate in reversed(dirs):
        if os.access(os.path.join(candidate, "postgres"), os.X_OK):
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(os.path.realpath(initdb)).parent
    raise ServiceUnavailable("PostgreSQL is not installed (apt-get install postgresql)")


def server_user() -> pwd.struct_passwd | None:
    """The account postgres runs as: it refuses root, so postgres or nobody then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceUnavailable("running as root and there is no postgres or nobody account")


def wait_until(
    proc: subprocess.Popen[bytes], check: Callable[[], bool], what: str, log: Path
) -> None:
    """Poll ``check()`` until it is true; the server dying or a timeout is an error."""
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with {proc.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what} did not start in {START_TIMEOUT:.0f} s: {tail(log)}")
        time.sleep(0.05)


def tail(log: Path) -> str:
    """The last lines of a server's log, for an error message."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(lines[-5:])


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Ask a server to shut down; kill it if it does not."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_postgres(tmp: Path) -> Generator[Service, None, None]:
    """initdb into ``tmp`` and run postgres on a free port: superuser ``aloop``, no password."""
    bindir = postgres_bindir()
    account = server_user()
    ids: dict[str, Any] = {}
    if account is not None:
        os.chown(tmp, account.pw_uid, account.pw_gid)
        ids = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    data, log = tmp / "data", tmp / "postgres.log"
    user = "aloop"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"]
    init = subprocess.run(
        [*initdb, "--no-sync", "--no-instructions"],
        capture_output=True,
        cwd=tmp,  # the server's account may not be able to enter the current directory
        **ids,
    )
    if init.returncode != 0:
        raise ServiceUnavailable(f"initdb failed: {init.stderr.decode(errors='replace')[-500:]}")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), *POSTGRES_SETTINGS],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            **ids,
        )
    try:
        isready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        wait_until(
            proc,
            lambda: subprocess.run(isready, capture_output=True).returncode == 0,
            "postgres",
            log,
        )
        yield Service("127.0.0.1", port, user)
    finally:
        stop(proc, signal.SIGINT)  # postgres' fast shutdown


def redis_ping(port: int) -> bool:
    """Whether a Redis server answers PING on the port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(tmp: Path) -> Generator[Service, None, None]:
    """redis-server on a free port, nothing persisted."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        raise ServiceUnavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = tmp / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--dir", str(tmp), *REDIS_SETTINGS],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(proc, lambda: redis_ping(port), "redis-server", log)
        yield Service("127.0.0.1", port)
    finally:
        stop(proc, signal.SIGTERM)


def service_fixture(start: Starter) -> Iterator[Service | str]:
    """Run a starter in a temporary directory: its Service, or why it could not start."""
    tmp = Path(tempfile.mkdtemp(prefix="aloop-service-"))
    try:
        servers = start(tmp)
        try:
            service = next(servers)
        except ServiceUnavailable as exc:
            yield str(exc)
            return
        try:
            yield service
        finally:
            servers.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def require(service: Service | str, name: str) -> Service:
    """The service, or skip (fail under ALOOP_REQUIRE_SERVICES=1) saying why it is missing."""
    if isinstance(service, str):
        unavailable(f"cannot start {name}: {service}")
    assert isinstance(service, Service)
    return service
