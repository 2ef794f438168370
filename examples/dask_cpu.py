"""CPU-bound work on a Dask cluster from an aloop program.

The guide sends CPU-bound work to other processes with
``loop.run_in_executor(ProcessPoolExecutor(), fn, *args)``. The same line runs
the work on Dask workers when the executor is ``client.get_executor()``: the
coroutine awaits an asyncio future while a worker process computes. Dask's own
async API (``await client.submit(...)``) runs on the same loop.

    python examples/dask_cpu.py                      # a LocalCluster of 2 worker processes
    python examples/dask_cpu.py tcp://127.0.0.1:8786  # an existing scheduler

With a LocalCluster the scheduler and the nannies run in this process, on
aloop; each worker runs in its own process, on the loop Dask picks there
(``distributed.admin.event-loop``).
"""

from __future__ import annotations

import asyncio
import sys

from distributed import Client, LocalCluster

import aloop


def fib(n: int) -> int:
    """CPU-bound work, as in the guide's process-pool example."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def loop_name() -> str:
    """The class of the event loop running where this is called."""
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


async def compute(client: Client) -> list[str]:
    """The guide's CPU work through the executor, then through Dask's async API."""
    loop = asyncio.get_running_loop()
    executor = client.get_executor()
    ns = [20, 21, 22, 23]
    results = await asyncio.gather(*(loop.run_in_executor(executor, fib, n) for n in ns))
    total = await client.submit(sum, results)
    squares = await client.gather(client.map(lambda n: n * n, ns))
    workers = await client.run(loop_name)
    scheduler = await client.run_on_scheduler(loop_name)
    return [
        f"this program's loop: {loop_name()}",
        f"run_in_executor: fib{tuple(ns)} = {results}",
        f"client.submit: sum = {total}",
        f"client.map: squares = {squares}",
        f"scheduler's loop: {scheduler}",
        *(f"worker's loop: {name}" for name in sorted(workers.values())),
    ]


async def main(address: str | None = None) -> list[str]:
    """Compute on the scheduler at ``address``, or on a LocalCluster started here."""
    if address is not None:
        async with Client(address, asynchronous=True, timeout="60s") as client:
            return await compute(client)
    async with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        return await compute(client)


# The guard matters: Dask starts worker processes with "spawn", which imports
# this file again in each of them.
if __name__ == "__main__":
    for line in aloop.run(main(sys.argv[1] if len(sys.argv) > 1 else None)):
        print(line)
