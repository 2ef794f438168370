"""How long a test suite that sleeps through a simulated day takes on virtual time.

    python bench/virtual_day.py [--tests 100]

Each "test" is a program that retries every 10 minutes for a day, with a
timeout around each attempt and a periodic heartbeat: 144 attempts, 288 timer
jumps. Prints real seconds for the whole suite; on a real clock it would take
a day per test.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aloop


async def one_simulated_day() -> int:
    loop = asyncio.get_running_loop()
    beats = 0

    def heartbeat() -> None:
        nonlocal beats
        beats += 1
        loop.call_later(300, heartbeat)

    loop.call_later(300, heartbeat)
    attempts = 0
    while loop.time() < 86400:
        attempts += 1
        async with asyncio.timeout(60):
            await asyncio.sleep(1)
        await asyncio.sleep(599)
    return attempts + beats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100, help="simulated days to run")
    args = parser.parse_args()
    started = time.perf_counter()
    for _ in range(args.tests):
        result = aloop.run(one_simulated_day(), virtual_time=True)
        assert result == 144 + 288, result
    elapsed = time.perf_counter() - started
    mode = "compiled" if aloop.COMPILED else "interpreted"
    print(
        f"{args.tests} simulated days ({args.tests * 86400:,} s of loop time) in "
        f"{elapsed:.3f} s real time ({elapsed / args.tests * 1000:.2f} ms per day, aloop {mode})"
    )


if __name__ == "__main__":
    main()
