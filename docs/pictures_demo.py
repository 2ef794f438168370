"""The program docs/pictures.py photographs: a small crawler on aloop, with its monitor on.

A crawler task starts fetchers that share a semaphore and read from a local
server over TCP, a parser consumes their pages from a queue, a heartbeat
sleeps, and a worker does short bursts of CPU work so that the loop is
visibly busy. It prints ``READY`` once everything runs, then runs until
killed (or for ``--seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib

import aloop


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The local 'web server': answers each request line after a while."""
    task = asyncio.current_task()
    if task is not None:
        task.set_name(f"serve-{writer.get_extra_info('peername')[1]}")
    try:
        while line := await reader.readline():
            await asyncio.sleep(0.4 + (len(line) % 7) / 10)
            writer.write(b"<html>" + line * 50 + b"</html>\n")
            await writer.drain()
    finally:
        writer.close()


async def fetch(n: int, port: int, limit: asyncio.Semaphore, pages: asyncio.Queue[bytes]) -> None:
    """One fetcher: a connection of its own, one request at a time, under the semaphore."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            async with limit:
                writer.write(f"GET /page/{n}\n".encode())
                await writer.drain()
                pages.put_nowait(await reader.readline())
            await asyncio.sleep(0.2 * n)
    finally:
        writer.close()


async def parse(pages: asyncio.Queue[bytes]) -> None:
    while True:
        page = await pages.get()
        hashlib.sha256(page * 200).hexdigest()


async def crawler(port: int) -> None:
    pages: asyncio.Queue[bytes] = asyncio.Queue()
    limit = asyncio.Semaphore(3)
    async with asyncio.TaskGroup() as group:
        group.create_task(parse(pages), name="parser")
        for n in range(6):
            group.create_task(fetch(n, port, limit, pages), name=f"fetch-{n}")


async def heartbeat() -> None:
    while True:
        await asyncio.sleep(30)


async def crunch() -> None:
    """Short bursts of CPU work: the loop's busy share is not zero."""
    while True:
        for _ in range(20):
            hashlib.sha256(b"x" * 200_000).digest()
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)


async def main(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    with aloop.Monitor(loop, detail=True):
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tasks = [
            asyncio.create_task(crawler(port), name="crawler"),
            asyncio.create_task(heartbeat(), name="heartbeat"),
            asyncio.create_task(crunch(), name="crunch"),
        ]
        await asyncio.sleep(0.5)
        print("READY", flush=True)
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3600.0)
    aloop.run(main(parser.parse_args().seconds))
