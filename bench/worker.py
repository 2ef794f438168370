"""Run one benchmark on one loop in this (fresh) process and print the result as JSON.

    python bench/worker.py info [LOOP ...]    describe the interpreter and the loops
    python bench/worker.py run BENCH LOOP [--scale S]

bench/run.py starts one of these per measurement; it is not meant to be run by hand
except for debugging. The last line of stdout is always one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import importlib.metadata
import json
import platform
import sys
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from benchmarks import BY_NAME, Benchmark

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# loop name -> module that provides new_event_loop(); aloop last (the table's subject).
# rloop and zuvloop are optional (zuvloop has wheels for 3.14+ only).
LOOP_MODULES: dict[str, str] = {
    "asyncio": "asyncio",
    "uvloop": "uvloop",
    "rloop": "rloop",
    "zuvloop": "zuvloop",
    "aloop": "aloop",
}

WARMUP_SCALE = 0.02


def import_loop(name: str) -> tuple[ModuleType, LoopFactory]:
    """Import the module behind loop `name`; ImportError means the loop is missing."""
    module = importlib.import_module(LOOP_MODULES[name])
    factory: LoopFactory = module.new_event_loop
    return module, factory


def describe_loop(name: str) -> dict[str, Any]:
    try:
        module, _ = import_loop(name)
    except Exception as exc:  # an ImportError, or a broken package
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(LOOP_MODULES[name])
        except importlib.metadata.PackageNotFoundError:
            pass
    if name == "asyncio":
        version = platform.python_version()
    compiled = getattr(module, "COMPILED", None)
    return {
        "available": True,
        "version": version,
        "compiled": None if compiled is None else bool(compiled),
        "path": getattr(module, "__file__", None),
    }


def info(loops: list[str]) -> dict[str, Any]:
    return {
        "status": "ok",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "loops": {name: describe_loop(name) for name in loops},
    }


def measure(bench: Benchmark, factory: LoopFactory, scale: float) -> dict[str, Any]:
    if bench.warmup:
        run_on_fresh_loop(bench, factory, min(scale, 1.0) * WARMUP_SCALE)
    result = run_on_fresh_loop(bench, factory, scale)
    return {"status": "ok", "unit": bench.unit, "title": bench.title, **dataclasses.asdict(result)}


def run_on_fresh_loop(bench: Benchmark, factory: LoopFactory, scale: float) -> Any:
    loop = factory()
    try:
        return bench.func(loop, scale)
    finally:
        loop.close()


def run(bench_name: str, loop_name: str, scale: float) -> dict[str, Any]:
    header = {"bench": bench_name, "loop": loop_name, "scale": scale}
    try:
        _, factory = import_loop(loop_name)
    except Exception as exc:
        return {**header, "status": "missing", "error": f"{type(exc).__name__}: {exc}"}
    try:
        return {**header, **measure(BY_NAME[bench_name], factory, scale)}
    except Exception:
        return {**header, "status": "error", "error": traceback.format_exc()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info_cmd = sub.add_parser("info")
    info_cmd.add_argument("loops", nargs="*", default=list(LOOP_MODULES))
    run_cmd = sub.add_parser("run")
    run_cmd.add_argument("bench", choices=sorted(BY_NAME))
    run_cmd.add_argument("loop", choices=sorted(LOOP_MODULES))
    run_cmd.add_argument("--scale", type=float, default=1.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "info":
        report = info(args.loops)
    else:
        report = run(args.bench, args.loop, args.scale)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
