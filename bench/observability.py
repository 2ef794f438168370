"""What observing costs: sleep(0) switching and idle-task memory on aloop.

    python bench/observability.py [--repeat 5] [--quick]

Modes: nothing attached; the monitor (``aloop.run(monitor=True)``: a spawn
hook, counters, the sampling watchdog); the monitor with per-step detail; a
trace recording. Each (mode, run) is a fresh process, modes interleaved;
medians, and the overhead against "off".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODES = ("off", "monitor", "monitor+detail", "trace")

CHILD = r"""
import asyncio, gc, json, os, sys, time
import aloop

mode, tasks, switches, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
loop = aloop.new_event_loop()
tools = []
if mode.startswith("monitor"):
    from aloop.tooling.monitor import Monitor
    tools.append(Monitor(loop, detail=(mode == "monitor+detail")).start())
elif mode == "trace":
    from aloop.tooling.trace import Trace
    loop.add_instrument(Trace(max_events=100_000))

async def switcher():
    for _ in range(switches):
        await asyncio.sleep(0)

async def switching():
    await asyncio.gather(*(switcher() for _ in range(tasks)))

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

async def idle_tasks():
    gate = loop.create_future()
    async def waiter():
        await gate
    gc.collect()
    before = rss()
    spawned = [asyncio.ensure_future(waiter()) for _ in range(idle)]
    await asyncio.sleep(0)
    gc.collect()
    per_task = (rss() - before) / idle
    gate.set_result(None)
    await asyncio.gather(*spawned)
    return per_task

start = time.perf_counter()
loop.run_until_complete(switching())
ns = (time.perf_counter() - start) / (tasks * switches) * 1e9
per_task = loop.run_until_complete(idle_tasks())
for tool in tools:
    tool.stop()
loop.close()
print(json.dumps({"ns_per_switch": ns, "bytes_per_idle_task": per_task}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tasks, switches, idle = (100, 100, 10_000) if args.quick else (1000, 1000, 100_000)
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(tasks), str(switches), str(idle)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[mode].append(json.loads(out))
    base = statistics.median(r["ns_per_switch"] for r in results["off"])
    print(
        f"sleep(0) switching, {tasks} tasks x {switches}; idle tasks: {idle}; "
        f"median of {args.repeat} fresh processes per mode"
    )
    print(f"{'mode':<16} {'ns/switch':>10} {'overhead':>9} {'bytes/idle task':>16}")
    for mode in MODES:
        ns = statistics.median(r["ns_per_switch"] for r in results[mode])
        mem = statistics.median(r["bytes_per_idle_task"] for r in results[mode])
        print(f"{mode:<16} {ns:>10.0f} {ns / base - 1:>+8.1%} {mem:>16.0f}")


if __name__ == "__main__":
    main()
