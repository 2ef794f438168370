"""The asyncio ecosystem unchanged on aloop: aiohttp, httpx, websockets and uvicorn.

Each test runs one program on the stdlib loop and on aloop (the ``loop_factory``
fixture) and checks what it saw; the libraries talk over real loopback sockets,
over TLS where they support it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from tests.support import LoopFactory, client_context, requires_test_certs, server_context
from tests.support import run_with_loop as run

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is a dev dependency (scripts/env.sh)")
web = pytest.importorskip("aiohttp.web")
httpx = pytest.importorskip("httpx", reason="httpx is a dev dependency (scripts/env.sh)")
websockets = pytest.importorskip("websockets", reason="websockets is a dev dependency")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is a dev dependency (scripts/env.sh)")

pytestmark = pytest.mark.usefixtures("no_fd_leak")

BIG = bytes(range(256)) * 4096  # 1 MiB, not a repeated single byte


def aiohttp_app() -> Any:
    """Routes: a greeting, an echo of the body, a streamed 1 MiB, a websocket echo."""

    async def hello(request: Any) -> Any:
        return web.Response(text=f"hello {request.query.get('name', '?')}")

    async def echo(request: Any) -> Any:
        return web.Response(body=await request.read())

    async def stream(request: Any) -> Any:
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(BIG), 65536):
            await response.write(BIG[start : start + 65536])
        await response.write_eof()
        return response

    async def ws_echo(request: Any) -> Any:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data.upper())
        return ws

    app = web.Application()
    app.add_routes(
        [
            web.get("/hello", hello),
            web.post("/echo", echo),
            web.get("/stream", stream),
            web.get("/ws", ws_echo),
        ]
    )
    return app


async def start_aiohttp(sslcontext: ssl.SSLContext | None = None) -> tuple[Any, int]:
    runner = web.AppRunner(aiohttp_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=sslcontext)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def test_aiohttp_server_and_client(loop_factory: LoopFactory) -> None:
    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        runner, port = await start_aiohttp()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/hello", params={"name": "aloop"}) as r:
                    greeting = (r.status, await r.text())
                async with session.post(f"{base}/echo", data=BIG) as r:
                    echoed = await r.read() == BIG
                async with session.get(f"{base}/stream") as r:
                    streamed = await r.read() == BIG
                async with session.ws_connect(f"{base}/ws") as ws:
                    replies = []
                    for word in ("one", "two", "three"):
                        await ws.send_str(word)
                        replies.append((await ws.receive()).data)

                # 20 requests at once over the session's connection pool.
                async def fetch(i: int) -> str:
                    async with session.get(f"{base}/hello", params={"name": str(i)}) as r:
                        return await r.text()  # type: ignore[no-any-return]

                many = await asyncio.gather(*(fetch(i) for i in range(20)))
        finally:
            await runner.cleanup()
        return [greeting, echoed, streamed, replies, many]

    got = run(loop_factory, main)
    assert got == [
        (200, "hello aloop"),
        True,
        True,
        ["ONE", "TWO", "THREE"],
        [f"hello {i}" for i in range(20)],
    ]


@requires_test_certs
def test_httpx_client_over_tls(loop_factory: LoopFactory) -> None:
    """httpx (through anyio) against aiohttp's server, both over TLS."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        server_ctx = server_context()
        runner, port = await start_aiohttp(server_ctx)
        base = f"https://127.0.0.1:{port}"
        client_ctx = client_context()
        try:
            async with httpx.AsyncClient(verify=client_ctx) as client:
                r = await client.get(f"{base}/hello", params={"name": "tls"})
                greeting = (r.status_code, r.text, r.http_version)
                r = await client.post(f"{base}/echo", content=BIG)
                echoed = r.content == BIG
                async with client.stream("GET", f"{base}/stream") as r:
                    chunks = [chunk async for chunk in r.aiter_bytes()]
                streamed = b"".join(chunks) == BIG
        finally:
            await runner.cleanup()
        return [greeting, echoed, streamed]

    assert run(loop_factory, main) == [(200, "hello tls", "HTTP/1.1"), True, True]


def test_websockets_server_and_client(loop_factory: LoopFactory) -> None:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message[::-1])

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                replies = []
                for i in range(50):
                    await ws.send(f"message {i}")
                    replies.append(await ws.recv())
                await ws.send(BIG)
                big_back = await ws.recv() == BIG[::-1]
        return [replies, big_back]

    replies, big_back = run(loop_factory, main)
    assert replies == [f"message {i}"[::-1] for i in range(50)]
    assert big_back


def test_uvicorn_serves_an_asgi_app(loop_factory: LoopFactory) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reply = f"{scope['method']} {scope['path']} {len(body)}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": reply})

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                got = [(await client.get("/a")).text]
                got.append((await client.post("/b", content=BIG)).text)
                replies = await asyncio.gather(*(client.get(f"/c{i}") for i in range(10)))
                got.extend(r.text for r in replies)
        finally:
            server.should_exit = True
            await serving
        return got

    assert run(loop_factory, main) == ["GET /a 0", f"POST /b {len(BIG)}"] + [
        f"GET /c{i} 0" for i in range(10)
    ]
