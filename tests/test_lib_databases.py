"""asyncpg against a real PostgreSQL and redis-py against a real Redis, on both loops.

The servers are throwaway ones started for the session (tests/services.py);
without them these tests skip and say why (scripts/test.sh installs both and
makes a missing one a failure).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.services import Service, require, service_fixture, start_postgres, start_redis
from tests.support import LoopFactory, run_guarded

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is a dev dependency (scripts/env.sh)")
aredis = pytest.importorskip("redis.asyncio", reason="redis is a dev dependency (scripts/env.sh)")

pytestmark = pytest.mark.usefixtures("no_fd_leak")


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[Service | str]:
    yield from service_fixture(start_postgres)


@pytest.fixture(scope="session")
def redis_session() -> Iterator[Service | str]:
    yield from service_fixture(start_redis)


@pytest.fixture
def postgres(postgres_session: Service | str) -> Service:
    return require(postgres_session, "PostgreSQL")


@pytest.fixture
def redis_server(redis_session: Service | str) -> Service:
    return require(redis_session, "redis-server")


def pg_connect(pg: Service, **kwargs: Any) -> Any:
    return asyncpg.connect(
        host=pg.host, port=pg.port, user=pg.user, database="postgres", ssl=False, **kwargs
    )


def test_asyncpg_queries(loop_factory: LoopFactory, postgres: Service) -> None:
    """Parameters and types, a transaction rolled back, a cursor, COPY, prepared statements."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        conn = await pg_connect(postgres)
        try:
            got: list[Any] = [await conn.fetchval("SELECT $1::int + $2::int", 40, 2)]
            row = await conn.fetchrow("SELECT 'x'::text AS t, ARRAY[1, 2] AS a, NULL::int AS n")
            got.append(dict(row))
            await conn.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, name text)")
            await conn.executemany(
                "INSERT INTO items VALUES ($1, $2)", [(i, f"item {i}") for i in range(100)]
            )
            try:
                async with conn.transaction():
                    await conn.execute("DELETE FROM items")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            got.append(await conn.fetchval("SELECT count(*) FROM items"))
            async with conn.transaction():
                names = [r["name"] async for r in conn.cursor("SELECT name FROM items ORDER BY id")]
            got.append(names[:2] + names[-1:])
            await conn.copy_records_to_table(
                "items", records=[(i, f"copied {i}") for i in range(100, 5100)]
            )
            statement = await conn.prepare("SELECT name FROM items WHERE id = $1")
            got.append([await statement.fetchval(i) for i in (0, 5099)])
            big = await conn.fetchval("SELECT repeat('ab', 2000000)")
            got.append(len(big))
        finally:
            await conn.close()
        return got

    assert run_guarded(loop_factory, main) == [
        42,
        {"t": "x", "a": [1, 2], "n": None},
        100,
        ["item 0", "item 1", "item 99"],
        ["item 0", "copied 5099"],
        4_000_000,
    ]


def test_asyncpg_pool_notify_and_timeout(loop_factory: LoopFactory, postgres: Service) -> None:
    """A pool under concurrent queries, LISTEN/NOTIFY, and a query cancelled by its timeout."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        got: list[Any] = []
        async with asyncpg.create_pool(
            host=postgres.host,
            port=postgres.port,
            user=postgres.user,
            database="postgres",
            ssl=False,
            min_size=2,
            max_size=4,
        ) as pool:
            results = await asyncio.gather(
                *(pool.fetchval("SELECT $1::int * 2 FROM pg_sleep(0.01)", i) for i in range(20))
            )
            got.append(results)
            async with pool.acquire() as listener, pool.acquire() as sender:
                heard: asyncio.Queue[str] = asyncio.Queue()

                def on_notify(conn: Any, pid: int, channel: str, payload: str) -> None:
                    heard.put_nowait(payload)

                await listener.add_listener("news", on_notify)
                for word in ("one", "two"):
                    await sender.execute("SELECT pg_notify('news', $1)", word)
                got.append([await heard.get(), await heard.get()])
                await listener.remove_listener("news", on_notify)
            async with pool.acquire() as conn:
                try:
                    await conn.fetch("SELECT pg_sleep(30)", timeout=0.2)
                except TimeoutError:
                    got.append("timed out")
                got.append(await conn.fetchval("SELECT 'still usable'"))
        return got

    assert run_guarded(loop_factory, main) == [
        [i * 2 for i in range(20)],
        ["one", "two"],
        "timed out",
        "still usable",
    ]


def test_redis(loop_factory: LoopFactory, redis_server: Service) -> None:
    """Strings, counters, a transaction pipeline, a large value, a blocking pop, concurrency."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        prefix = uuid.uuid4().hex
        client = aredis.Redis(host=redis_server.host, port=redis_server.port)
        got: list[Any] = []
        try:
            await client.set(f"{prefix}:greeting", "hello")
            got.append(await client.get(f"{prefix}:greeting"))
            got.append([await client.incr(f"{prefix}:n") for _ in range(3)])
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(f"{prefix}:list", *range(5)).lrange(f"{prefix}:list", 0, -1)
                pipe.expire(f"{prefix}:list", 60)
                got.append(await pipe.execute())
            big = bytes(range(256)) * 8192  # 2 MiB
            await client.set(f"{prefix}:big", big)
            got.append(await client.get(f"{prefix}:big") == big)
            got.append(await client.blpop([f"{prefix}:empty"], timeout=0.1))
            values = await asyncio.gather(
                *(client.incrby(f"{prefix}:shared", 1) for _ in range(50))
            )
            got.append(sorted(values) == list(range(1, 51)))
            await client.delete(*[k async for k in client.scan_iter(f"{prefix}:*")])
        finally:
            await client.aclose()
        return got

    assert run_guarded(loop_factory, main) == [
        b"hello",
        [1, 2, 3],
        [5, [b"0", b"1", b"2", b"3", b"4"], True],
        True,
        None,
        True,
    ]


def test_redis_pubsub(loop_factory: LoopFactory, redis_server: Service) -> None:
    """Messages published on one connection arrive on a subscribed one, in order."""

    async def main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        channel = f"news-{uuid.uuid4().hex}"
        client = aredis.Redis(host=redis_server.host, port=redis_server.port)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                confirmation = await pubsub.get_message(timeout=10)
                receivers = [await client.publish(channel, f"item {i}") for i in range(5)]
                messages: list[bytes] = []
                while len(messages) < 5:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
                    if message is not None:
                        messages.append(message["data"])
                await pubsub.unsubscribe(channel)
        finally:
            await client.aclose()
        return [confirmation["type"] if confirmation else None, receivers, messages]

    assert run_guarded(loop_factory, main) == [
        "subscribe",
        [1] * 5,
        [f"item {i}".encode() for i in range(5)],
    ]
