"""uvicorn serving an ASGI app in-process and httpx's AsyncClient, on both loops.

``uvicorn.Server(config).serve()`` runs on the loop under test; httpx talks to
it over loopback: plain requests, keep-alive, streamed responses and uploads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support import LoopFactory, run_guarded

httpx = pytest.importorskip("httpx", reason="httpx is a dev dependency (scripts/env.sh)")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is a dev dependency (scripts/env.sh)")

pytestmark = pytest.mark.usefixtures("no_fd_leak")

CHUNKS = 50
CHUNK = b"0123456789abcdef" * 1024  # 16 KiB, no line breaks


async def read_body(receive: Any) -> bytes:
    body: bytes = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/stream``: CHUNKS chunks, a line each; ``/count``: the upload's size; else 404."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(CHUNKS):
            line = b"%d " % i + CHUNK + b"\n"
            await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    status, reply = 200, f"{scope['method']} {path} {len(body)}".encode()
    if path == "/missing":
        status, reply = 404, b"no such thing"
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


class Uvicorn:
    """uvicorn serving ``app`` on a free loopback port of the running loop."""

    async def __aenter__(self) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
        self.server = uvicorn.Server(config)
        self.serving = asyncio.ensure_future(self.server.serve())
        while not self.server.started:
            if self.serving.done():
                self.serving.result()  # why it stopped
            await asyncio.sleep(0.005)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.serving


def test_uvicorn_requests(loop_factory: LoopFactory) -> None:
    """A few requests on one keep-alive connection, a 404, and ten at once."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        async with Uvicorn() as base, httpx.AsyncClient(base_url=base) as client:
            got: list[Any] = []
            r = await client.get("/a")
            got.append((r.status_code, r.text, r.headers["content-type"]))
            r = await client.post("/b", content=b"x" * 100_000)
            got.append(r.text)
            r = await client.get("/missing")
            got.append((r.status_code, r.text))
            replies = await asyncio.gather(*(client.get(f"/c{i}") for i in range(10)))
            got.append([r.text for r in replies])
        return got

    assert run_guarded(loop_factory, main) == [
        (200, "GET /a 0", "text/plain"),
        "POST /b 100000",
        (404, "no such thing"),
        [f"GET /c{i} 0" for i in range(10)],
    ]


def test_httpx_streams_a_response(loop_factory: LoopFactory) -> None:
    """``client.stream``: bytes in pieces, then lines; the whole is intact."""
    expected = b"".join(b"%d " % i + CHUNK + b"\n" for i in range(CHUNKS))

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        async with Uvicorn() as base, httpx.AsyncClient(base_url=base) as client:
            async with client.stream("GET", "/stream") as r:
                pieces = [piece async for piece in r.aiter_bytes()]
            async with client.stream("GET", "/stream") as r:
                lines = [line async for line in r.aiter_lines()]
            async with client.stream("GET", "/stream") as r:
                first = await anext(r.aiter_raw())  # then leave without reading the rest
        return [
            b"".join(pieces) == expected,
            len(pieces) > 1,
            [line.split(" ")[0] for line in lines],
            expected.startswith(first),
        ]

    assert run_guarded(loop_factory, main) == [True, True, [str(i) for i in range(CHUNKS)], True]


def test_httpx_streams_an_upload(loop_factory: LoopFactory) -> None:
    """A request body from an async generator arrives whole (chunked encoding)."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(CHUNKS):
            yield CHUNK
            await asyncio.sleep(0)

    async def main(loop: asyncio.AbstractEventLoop) -> str:
        async with Uvicorn() as base, httpx.AsyncClient(base_url=base) as client:
            r = await client.put("/upload", content=body())
            return r.text  # type: ignore[no-any-return]

    assert run_guarded(loop_factory, main) == f"PUT /upload {CHUNKS * len(CHUNK)}"
