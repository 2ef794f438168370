"""Servers and workers started as a user starts them, each serving from an aloop loop.

Every test starts a real server process on a free loopback port, waits until
it answers HTTP, asks it which loop its handler runs on
(``type(asyncio.get_running_loop())``), and stops it with a signal, checking
that it exits cleanly. The apps are written to a temporary directory that
the server imports from; aloop comes from wherever this test imports it
(``PYTHONPATH`` is inherited, so pure mode stays pure).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.services import Service, free_port, require, service_fixture, start_redis
from tests.support import requires

import aloop

pytestmark = pytest.mark.usefixtures("no_fd_leak")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parent.parent
#: What a handler on aloop reports.
ALOOP = f"{aloop.Loop.__module__}.{aloop.Loop.__qualname__}"
# aloop's own code must not warn (tests/conftest.py's rule, in the server too).
WARNINGS = "error::DeprecationWarning:aloop.workers"

ASGI_APP = """
import asyncio


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""

AIOHTTP_APP = """
import asyncio

from aiohttp import web


async def handler(request):
    loop = type(asyncio.get_running_loop())
    return web.Response(text=f"{loop.__module__}.{loop.__qualname__}")


app = web.Application()
app.router.add_get("/", handler)
"""

HYPERCORN_MAIN = """
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

import aloop
from asgi_app import app

config = Config()
config.bind = [f"127.0.0.1:{sys.argv[1]}"]
aloop.run(serve(app, config))
"""

GRANIAN_MAIN = """
import sys

from granian import Granian

import aloop.workers

aloop.workers.register_granian()

if __name__ == "__main__":
    server = Granian(
        "asgi_app:app", address="127.0.0.1", port=int(sys.argv[1]), interface="asgi", loop="aloop"
    )
    server.serve()
"""

AIOHTTP_MAIN = """
import sys

from aiohttp import web

import aloop
from aiohttp_app import app

web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), loop=aloop.new_event_loop())
"""

FASTSTREAM_APP = """
import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker

broker = RedisBroker(os.environ["ALOOP_TEST_REDIS"])
app = FastStream(broker)


@broker.subscriber("aloop-test-in")
@broker.publisher("aloop-test-out")
async def which_loop(body: str) -> str:
    loop = type(asyncio.get_running_loop())
    return f"{loop.__module__}.{loop.__qualname__}"
"""

FASTSTREAM_MAIN = """
import aloop
from faststream_app import app

aloop.run(app.run())
"""

FILES = {
    "asgi_app.py": ASGI_APP,
    "aiohttp_app.py": AIOHTTP_APP,
    "hypercorn_main.py": HYPERCORN_MAIN,
    "granian_main.py": GRANIAN_MAIN,
    "aiohttp_main.py": AIOHTTP_MAIN,
    "faststream_app.py": FASTSTREAM_APP,
    "faststream_main.py": FASTSTREAM_MAIN,
}


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """A directory holding the apps and scripts above."""
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def server_env(apps: Path, **extra: str) -> dict[str, str]:
    """This process's environment, importing from ``apps`` first."""
    env = dict(os.environ)
    path = [str(apps), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), PYTHONWARNINGS=WARNINGS, **extra)
    return env


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    """Signal the server, kill it if it does not exit in time; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -signal.SIGKILL
    return proc.returncode


@contextmanager
def running(
    argv: list[str], apps: Path, clean: int = 0, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Run ``python argv`` in ``apps``; stop it with SIGTERM and check it exits ``clean``."""
    log = apps / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=apps,
            env=server_env(apps, **env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == clean, f"the server exited with {code}:\n{log_tail(log)}"
    assert "Traceback" not in log.read_text(errors="replace"), log_tail(log)


# Straight to loopback, whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port: int) -> str | None:
    """GET / on the port: the body, or None while the server is not answering yet."""
    try:
        with OPENER.open(f"http://127.0.0.1:{port}/", timeout=30) as response:
            return response.read().decode()
    except urllib.error.HTTPError:
        raise  # it answered, with an error status: no use waiting
    except OSError:  # refused, reset or timed out (a gunicorn worker still booting)
        return None


def handler_loops(proc: subprocess.Popen[bytes], log: Path, port: int) -> list[str]:
    """Wait until the server answers, then what two requests' handlers ran on."""
    deadline = time.monotonic() + START_TIMEOUT
    while (body := get(port)) is None:
        assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT} s:\n{log_tail(log)}"
        time.sleep(0.05)
    second = get(port)
    assert second is not None, log_tail(log)
    return [body, second]


def serve_and_ask(argv: list[str], apps: Path, port: int, clean: int = 0, **env: str) -> list[str]:
    with running(argv, apps, clean, **env) as (proc, log):
        return handler_loops(proc, log, port)


# uvicorn shuts down gracefully, then raises the signal it caught again, as
# the default handler would have (uvicorn.Server.capture_signals).
UVICORN_EXIT = -signal.SIGTERM


@requires("uvicorn")
def test_uvicorn_loop_option(apps: Path) -> None:
    port = free_port()
    argv = ["-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    loops = serve_and_ask([*argv, "--loop", "aloop:new_event_loop"], apps, port, UVICORN_EXIT)
    assert loops == [ALOOP] * 2


@requires("uvicorn")
def test_uvicorn_loop_environment_variable(apps: Path) -> None:
    port = free_port()
    argv = ["-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    loops = serve_and_ask(argv, apps, port, UVICORN_EXIT, UVICORN_LOOP="aloop:new_event_loop")
    assert loops == [ALOOP] * 2


@requires("uvicorn")
def test_uvicorn_refuses_the_dotted_form(apps: Path) -> None:
    """uvicorn takes a custom loop as ``module:attribute`` only (README says so)."""
    argv = ["-m", "uvicorn", "asgi_app:app", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, *argv, "--loop", "aloop.new_event_loop"],
        cwd=apps,
        env=server_env(apps),
        capture_output=True,
        timeout=START_TIMEOUT,
    )
    assert done.returncode != 0
    assert b'must be in format "<module>:<attribute>"' in done.stderr


GUNICORN_WORKERS = [("UvicornWorker", "asgi_app:app"), ("AiohttpWorker", "aiohttp_app:app")]
# What each worker class imports besides gunicorn (src/aloop/workers.py).
WORKER_NEEDS = {"UvicornWorker": "uvicorn_worker", "AiohttpWorker": "aiohttp"}
GUNICORN_PARAMS = [
    pytest.param(worker, app, marks=requires("gunicorn", WORKER_NEEDS[worker]))
    for worker, app in GUNICORN_WORKERS
]


def gunicorn(worker: str, app: str, port: int) -> list[str]:
    # No control socket: gunicorn's default is one fixed path under $HOME.
    bind = ["-b", f"127.0.0.1:{port}", "--no-control-socket"]
    return ["-m", "gunicorn", "-k", worker, "-w", "1", *bind, app]


@pytest.mark.parametrize(("worker", "app"), GUNICORN_PARAMS)
def test_gunicorn_worker(apps: Path, worker: str, app: str) -> None:
    port = free_port()
    loops = serve_and_ask(gunicorn(f"aloop.workers.{worker}", app, port), apps, port)
    assert loops == [ALOOP] * 2


def gunicorn_entry_points() -> dict[str, str]:
    """pyproject.toml's gunicorn.workers table: egg name -> object reference."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return dict(project["entry-points"]["gunicorn.workers"])


def installed_entry_points() -> dict[str, str]:
    """The gunicorn.workers entry points of the aloop distribution gunicorn will find."""
    try:
        dist = importlib.metadata.distribution("aloop")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("aloop is not installed as a distribution: no entry points to load")
    return {ep.name: ep.value for ep in dist.entry_points if ep.group == "gunicorn.workers"}


@pytest.mark.parametrize(("worker", "app"), GUNICORN_PARAMS)
def test_gunicorn_egg_entry_point(apps: Path, worker: str, app: str) -> None:
    table = gunicorn_entry_points()
    assert sorted(table.values()) == sorted(f"aloop.workers:{w}" for w, _ in GUNICORN_WORKERS)
    installed = installed_entry_points()
    assert installed == table, "aloop's installed metadata is stale: reinstall aloop"
    (name,) = [egg for egg, ref in table.items() if ref == f"aloop.workers:{worker}"]
    port = free_port()
    loops = serve_and_ask(gunicorn(f"egg:aloop#{name}", app, port), apps, port)
    assert loops == [ALOOP] * 2


@requires("hypercorn")
def test_hypercorn_serve_under_aloop_run(apps: Path) -> None:
    port = free_port()
    assert serve_and_ask(["hypercorn_main.py", str(port)], apps, port) == [ALOOP] * 2


@requires("granian")
def test_granian_loop_registry(apps: Path) -> None:
    """The handler runs in granian's worker process, on the loop registered from aloop."""
    port = free_port()
    assert serve_and_ask(["granian_main.py", str(port)], apps, port) == [ALOOP] * 2


@requires("aiohttp")
def test_aiohttp_run_app_loop(apps: Path) -> None:
    port = free_port()
    assert serve_and_ask(["aiohttp_main.py", str(port)], apps, port) == [ALOOP] * 2


@pytest.fixture(scope="module")
def redis_session() -> Iterator[Service | str]:
    yield from service_fixture(start_redis)


@requires("faststream", "redis")
@pytest.mark.parametrize("how", ["option", "environment"])
def test_faststream_run_loop(apps: Path, redis_session: Service | str, how: str) -> None:
    """``faststream run --loop`` (or FASTSTREAM_LOOP): a Redis subscriber answers from aloop."""
    pytest.importorskip("typer", reason="faststream run needs faststream[cli] (scripts/env.sh)")
    argv = ["-m", "faststream", "run", "faststream_app:app"]
    env = {"FASTSTREAM_LOOP": "aloop:new_event_loop"}
    if how == "option":
        argv, env = [*argv, "--loop", env.pop("FASTSTREAM_LOOP")], {}
    assert ALOOP.encode() in faststream_answer(argv, apps, redis_session, **env)


@requires("faststream", "redis")
def test_faststream_under_aloop_run(apps: Path, redis_session: Service | str) -> None:
    """``aloop.run(app.run())``: FastStream's programmatic start, no CLI needed."""
    assert ALOOP.encode() in faststream_answer(["faststream_main.py"], apps, redis_session)


def faststream_answer(
    argv: list[str], apps: Path, redis_session: Service | str, **env: str
) -> bytes:
    """Start the FastStream app, send it a message, return its reply's payload."""
    import redis  # the tests that come here require it

    server = require(redis_session, "redis-server")
    client = redis.Redis(host=server.host, port=server.port)
    replies = client.pubsub()
    try:
        replies.subscribe("aloop-test-out")
        url = f"redis://{server.host}:{server.port}"
        with running(argv, apps, ALOOP_TEST_REDIS=url, **env) as (proc, log):
            return faststream_reply(client, replies, proc, log)
    finally:
        replies.close()
        client.close()


def faststream_reply(client: Any, replies: Any, proc: subprocess.Popen[bytes], log: Path) -> bytes:
    """Publish until the app's subscriber hears it, then its reply's payload."""
    deadline = time.monotonic() + START_TIMEOUT
    # PUBLISH answers how many subscribers got the message: 0 until the app listens.
    while not client.publish("aloop-test-in", "which loop?"):
        assert proc.poll() is None, f"faststream exited with {proc.returncode}:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"no subscriber in {START_TIMEOUT} s:\n{log_tail(log)}"
        time.sleep(0.05)
    while time.monotonic() < deadline:
        message = replies.get_message(timeout=1.0)
        if message is not None and message["type"] == "message":
            return bytes(message["data"])
    raise AssertionError(f"no reply in {START_TIMEOUT} s:\n{log_tail(log)}")
