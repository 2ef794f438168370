"""What observing costs: sleep(0) switching and idle-task memory on aloop.

    python bench/observability.py [--repeat 5] [--quick]

Modes: nothing attached; the monitor (``aloop.run(monitor=True)``: a spawn
hook, counters, the sampling watchdog); the monitor with per-step detail; a
trace recording (a ring of 100,000 records). Each (mode, run) is a fresh
process, modes interleaved. In it, segments of switching alternate with the
mode off and on, and the overhead is the median of the on/off ratios of
neighbouring segments: this machine's speed drifts between processes far
more than between two segments a second apart. Reported: medians over the
processes of the ns per switch with the mode on, and of that paired ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODES = ("off", "monitor", "monitor+detail", "trace")

CHILD = r"""
import asyncio, gc, json, os, statistics, sys, time
import aloop

mode, tasks, switches, idle, pairs = sys.argv[1], *map(int, sys.argv[2:6])
loop = aloop.new_event_loop()

def attach():
    # Turns the mode on; returns the function that turns it off.
    if mode.startswith("monitor"):
        from aloop.tooling.monitor import Monitor
        return Monitor(loop, detail=(mode == "monitor+detail")).start().stop
    if mode == "trace":
        from aloop.tooling.trace import Trace
        trace = Trace(max_events=100_000)
        loop.add_instrument(trace)
        return lambda: loop.remove_instrument(trace)
    return lambda: None

async def switcher():
    for _ in range(switches):
        await asyncio.sleep(0)

async def switching():
    await asyncio.gather(*(switcher() for _ in range(tasks)))

def segment():
    start = time.perf_counter()
    loop.run_until_complete(switching())
    return (time.perf_counter() - start) / (tasks * switches) * 1e9

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

segment()  # warm up
on, ratios = [], []
for _ in range(pairs):
    off_ns = segment()
    detach = attach()
    on.append(segment())
    detach()
    ratios.append(on[-1] / off_ns)
detach = attach()
per_task = loop.run_until_complete(idle_tasks())
detach()
loop.close()
print(json.dumps({
    "ns_per_switch": statistics.median(on),
    "ratio": statistics.median(ratios),
    "bytes_per_idle_task": per_task,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tasks, switches, idle, pairs = (100, 100, 10_000, 2) if args.quick else (1000, 1000, 100_000, 5)
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            argv = [mode, str(tasks), str(switches), str(idle), str(pairs)]
            out = subprocess.run(
                [sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True
            ).stdout
            results[mode].append(json.loads(out))
    print(
        f"sleep(0) switching, {tasks} tasks x {switches} per segment, {pairs} off/on segment "
        f"pairs per process; idle tasks: {idle}; median of {args.repeat} fresh processes per mode"
    )
    print("(off: its paired 'overhead' compares two segments with nothing on, the noise floor)")
    print(f"{'mode':<16} {'ns/switch':>10} {'overhead':>9} {'bytes/idle task':>16}")
    for mode in MODES:
        ns = statistics.median(r["ns_per_switch"] for r in results[mode])
        ratio = statistics.median(r["ratio"] for r in results[mode])
        mem = statistics.median(r["bytes_per_idle_task"] for r in results[mode])
        print(f"{mode:<16} {ns:>10.0f} {ratio - 1:>+8.1%} {mem:>16.0f}")


if __name__ == "__main__":
    main()
