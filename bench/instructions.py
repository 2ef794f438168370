"""Instruction counts per operation under callgrind: repeatable on a noisy machine.

Every (benchmark, loop) pair runs under `valgrind --tool=callgrind` at two workload
sizes N1 < N2; the figure is the difference of the two runs' instruction counts divided
by N2 - N1, so the start-up (interpreter, imports, loop creation, connecting) cancels
out. Core benchmarks (bench/benchmarks.py) count per callback / switch / round trip /
task / timer, all runs in one process (a warm-up, N1, N2; callgrind writes each as a
part of its own); echo servers (bench/net/servers.py) run in a fresh process per size
under callgrind while bench/net's C client sends a fixed number of requests.

    python bench/instructions.py                                  # everything, every loop installed
    python bench/instructions.py --bench chain,protocol --loops aloop,uvloop --top 15
    python bench/instructions.py --loops aloop,aloop@../wt --diff aloop,aloop@../wt  # a branch
    scripts/python.sh 3.14 bench/instructions.py --json bench/results/instr-3.14.json

A loop named `aloop@TREE` is aloop imported from TREE/src (PYTHONPATH), which must be
compiled in place (`cd TREE && python setup.py build_ext --inplace`); `--allow-pure`
counts an uncompiled tree anyway. `--top N` adds, per benchmark and loop, the N
functions with the most instructions of their own per operation (the same difference
of two runs, per function). `--keep DIR` keeps the callgrind.out files for
callgrind_annotate or kcachegrind.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBJECT = "aloop"
DEFAULT_CONNS = 1
SERVER_START_TIMEOUT = 300.0  # seconds: an interpreter under callgrind starts slowly


# Operations in the two runs. The counts are exact enough that small sizes do: chain
# on aloop gave the same instructions per callback at 1000/3000 as at 20k/100k. Most
# of a run's time under callgrind is the interpreter starting.
CORE_SIZES = (5000, 25_000)
ECHO_SIZES = (1000, 5000)


@dataclass(frozen=True)
class Case:
    """One benchmark: a core workload (scaled) or an echo server under load."""

    name: str
    kind: str  # core | echo
    unit: str  # what one operation is
    sizes: tuple[int, int]  # operations in the two runs
    bench: str = ""  # core: the bench/benchmarks.py name
    per_scale: int = 0  # core: operations at scale 1.0 of that benchmark's scaled knob
    ops_per_unit: int = 1  # core: operations per unit of the knob (sleep0: 1000 tasks)
    variant: str = ""  # echo: protocol | streams | sockets
    size: int = 0  # echo: message bytes

    def scale_for(self, ops: int) -> float:
        return ops / self.ops_per_unit / self.per_scale


CASES: tuple[Case, ...] = (
    Case("chain", "core", "callback", CORE_SIZES, "chain", 1_000_000),
    Case("batch", "core", "callback", CORE_SIZES, "batch", 1000, 1000),
    Case("sleep0", "core", "switch", CORE_SIZES, "sleep0", 1000, 1000),
    Case("pingpong", "core", "round trip", CORE_SIZES, "pingpong", 100_000),
    Case("timers", "core", "timer", CORE_SIZES, "timers", 100_000),
    Case("gather", "core", "task", CORE_SIZES, "gather", 100_000),
    Case("protocol", "echo", "request", ECHO_SIZES, variant="protocol", size=1024),
    Case("streams", "echo", "request", ECHO_SIZES, variant="streams", size=1024),
    Case("sockets", "echo", "request", ECHO_SIZES, variant="sockets", size=1024),
)
BY_NAME = {c.name: c for c in CASES}
# Timers under callgrind: deadlines spread over 1 ms, all due before the loop looks,
# so the count does not depend on how fast the machine ran (0.5 s natively).
TIMER_WINDOW = 0.001


# -- the child: one core workload in this process -------------------------------------


def child_core(bench: str, loop: str, scales: list[float]) -> int:
    """Run a bench/benchmarks.py workload on a fresh loop per scale; print the JSON results.

    With several scales, `os.getpgrp()` (the marker callgrind dumps before: see
    MARKER) is called before the first run and after each, so each run's
    instructions land in a part of their own."""
    import dataclasses

    import benchmarks
    from worker import import_loop, run_on_fresh_loop

    benchmarks.TIMER_WINDOW = TIMER_WINDOW
    _, factory = import_loop(loop)
    marked = len(scales) > 1
    if marked:
        os.getpgrp()
    wrong = False
    for scale in scales:
        result = run_on_fresh_loop(benchmarks.BY_NAME[bench], factory, scale)
        if marked:
            os.getpgrp()
        wrong = wrong or result.observed != result.expected
        sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    return 2 if wrong else 0


# -- callgrind output ---------------------------------------------------------------

_COMPRESSED = re.compile(r"\((\d+)\)(?: (.*))?")


@dataclass
class Profile:
    """Instructions of one callgrind run: the total and each function's own (self) cost."""

    total: int
    functions: dict[str, int] = field(default_factory=dict)


def read_profile(path: Path) -> Profile:
    """Parse a callgrind.out file (Ir only): the total and self cost per function."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn"}
    current = {"ob": "", "fn": ""}
    own: dict[tuple[str, str], int] = defaultdict(int)
    total: int | None = None
    skip_next_cost = False  # the line after calls= is the call's inclusive cost
    positions = 1  # columns before the costs: "line", or "instr line" (--dump-instr)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            head = line[:1]
            if head.isdigit() or head in "+-*":
                if skip_next_cost:
                    skip_next_cost = False
                    continue
                parts = line.split()
                if len(parts) > positions:  # positions, then Ir (the first event)
                    own[(current["ob"], current["fn"])] += int(parts[positions])
                continue
            if line.startswith("positions:"):
                positions = len(line.split(":", 1)[1].split())
                continue
            key, sep, value = line.rstrip("\n").partition("=")
            if sep and key in kind_of:
                table = names[kind_of[key]]
                match = _COMPRESSED.fullmatch(value)
                if match:
                    ident, name = match.groups()
                    if name is not None:
                        table[ident] = name
                    value = table.get(ident, value)
                if key in current:
                    current[key] = value
            elif key == "calls":
                skip_next_cost = True
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split(":", 1)[1].split()[0])
    functions: dict[str, int] = defaultdict(int)
    for (ob, fn), cost in own.items():
        functions[f"{_RECURSION.sub('', fn)} [{short_object(ob)}]"] += cost
    return Profile(total if total is not None else sum(functions.values()), dict(functions))


_RECURSION = re.compile(r"'\d+$")  # callgrind's fn'2: the same function, called recursively
_EXTENSION = re.compile(r"\.cpython-\d+[^.]*\.so$|\.abi3\.so$")


def short_object(path: str) -> str:
    """libpython3.12.so.1.0, mypyc (aloop's compiled modules), loop.so (uvloop's)..."""
    name = os.path.basename(path)
    if "__mypyc." in name:
        return "mypyc"
    return _EXTENSION.sub(".so", name)


# -- running under callgrind ----------------------------------------------------------


@dataclass
class Loop:
    """A loop to measure: a module name and, for aloop@TREE, the tree it comes from."""

    label: str
    module: str
    tree: Path | None = None

    @classmethod
    def parse(cls, spec: str) -> Loop:
        name, sep, tree = spec.partition("@")
        if sep:
            return cls(spec, name, Path(tree).resolve())
        return cls(spec, name)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if self.tree is not None:
            src = str(self.tree / "src")
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        return env


def valgrind_command(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out}"]


# libc's getpgrp(), which nothing else calls: callgrind writes a part before each call.
MARKER = "getpgrp"


def count_core(python: str, case: Case, loop: Loop, out: Path) -> dict[str, Any]:
    """One process under callgrind runs the workload at N1 (a warm-up), N1 and N2.

    Each run is a part of the profile of its own (callgrind --dump-before the
    marker): out.3 is the N1 run, out.4 the N2 run. The warm-up makes both runs
    find the same caches, free lists and specialized bytecode, and one
    interpreter start serves both sizes."""
    for stale in out.parent.glob(out.name + ".*"):  # parts of an earlier run (--keep)
        stale.unlink()
    n1, n2 = case.sizes
    scales = ",".join(repr(case.scale_for(n)) for n in (n1, n1, n2))
    command = [*valgrind_command(out), f"--dump-before={MARKER}"]
    command += [python, str(Path(__file__).resolve()), "--child", case.bench, loop.module, scales]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=loop.env(), timeout=3600, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode not in (0, 2) or not lines:
        return {"status": "error", "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
    parts = sorted(out.parent.glob(out.name + ".*"))
    if len(parts) != 4:  # start-up, warm-up, N1, N2 (the rest, to the exit, is `out`)
        names = ", ".join(p.name for p in parts)
        return {"status": "error", "error": f"expected 4 profile parts, found: {names}"}
    result: dict[str, Any] = json.loads(lines[-1])
    status = "ok" if proc.returncode == 0 else "wrong"
    if status == "wrong":
        result["error"] = "a run did not do its work: " + " | ".join(lines)
    return {"status": status, **result}


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def wait_idle(pid: int, quiet: float = 0.5, limit: float = 60.0) -> None:
    """Wait until process `pid` has used no CPU for `quiet` seconds (it finished closing)."""
    deadline = time.monotonic() + limit
    last, since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def count_echo(
    python: str, case: Case, loop: Loop, ops: int, out: Path, conns: int
) -> dict[str, Any]:
    """One echo server under callgrind, sent `ops` requests, then stopped."""
    import net

    command = [*valgrind_command(out), python, str(net.SERVERS), case.variant, loop.module]
    command += ["--port", "0"]
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, env=loop.env()
        )
        try:
            port = net.read_port(proc, SERVER_START_TIMEOUT)
            if isinstance(port, str):
                errors.seek(0)
                return {"status": "error", "error": port + "\n" + errors.read()[-1500:]}
            client = [str(net.BUILD / "echo_client"), "-p", str(port), "-c", str(conns)]
            client += ["-s", str(case.size), "-d", "36000", "-n", str(ops)]
            load = subprocess.run(client, capture_output=True, text=True, timeout=3600)
            wait_idle(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)  # valgrind still writes the profile
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lines = load.stdout.strip().splitlines()
    if not lines:
        return {"status": "error", "error": f"echo_client exit {load.returncode}: {load.stderr}"}
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("error"):
        return {"status": "error", **result}
    if result["requests"] < ops:  # -n counts at least `ops` (all connections' rounds)
        return {"status": "error", "error": f"only {result['requests']} of {ops} requests"}
    status = "wrong" if result["wrong"] else "ok"
    return {"status": status, **result}


# -- one (case, loop) pair ------------------------------------------------------------


@dataclass
class Cell:
    status: str = "ok"  # ok | missing | error | wrong
    per_op: float | None = None
    totals: tuple[int, int] = (0, 0)
    ops: tuple[int, int] = (0, 0)
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""
    # Own instructions per operation of every function (the same difference of two runs).
    functions: dict[str, float] = field(default_factory=dict)


def measure(args: argparse.Namespace, case: Case, loop: Loop, workdir: Path, top: int) -> Cell:
    profiles: list[Profile] = []
    ops_done: list[int] = []
    if case.kind == "core":
        out = workdir / f"callgrind.{case.name}.{safe(loop.label)}.out"
        result = count_core(args.python, case, loop, out)
        if result["status"] != "ok":
            return Cell(status=result["status"], error=str(result.get("error", result)))
        profiles = [read_profile(out.with_name(f"{out.name}.{part}")) for part in (3, 4)]
        ops_done = list(case.sizes)
    for ops in case.sizes if case.kind == "echo" else ():
        out = workdir / f"callgrind.{case.name}.{safe(loop.label)}.{ops}.out"
        result = count_echo(args.python, case, loop, ops, out, args.conns)
        if result["status"] != "ok":
            return Cell(status=result["status"], error=str(result.get("error", result)))
        if not out.exists():
            return Cell(status="error", error=f"callgrind wrote no {out.name}")
        profiles.append(read_profile(out))
        ops_done.append(int(result["requests"]))
    (small, large), (n1, n2) = profiles, ops_done
    span = n2 - n1
    cell = Cell(
        per_op=(large.total - small.total) / span,
        totals=(small.total, large.total),
        ops=(n1, n2),
    )
    names = set(small.functions) | set(large.functions)
    deltas = {n: (large.functions.get(n, 0) - small.functions.get(n, 0)) / span for n in names}
    cell.functions = {n: d for n, d in deltas.items() if abs(d) >= 0.05}
    if top:
        cell.top = sorted(cell.functions.items(), key=lambda item: -item[1])[:top]
    return cell


def safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


# -- loops ------------------------------------------------------------------------------


def describe(python: str, loop: Loop) -> dict[str, Any]:
    """Import the loop under `python` (as the child will); version, compiled, path."""
    code = (
        "import importlib, json, platform, sys\n"
        "name = sys.argv[1]\n"
        "try:\n"
        "    m = importlib.import_module(name)\n"
        "    m.new_event_loop\n"
        "except Exception as e:\n"
        "    print(json.dumps({'available': False, 'error': f'{type(e).__name__}: {e}'}))\n"
        "    raise SystemExit\n"
        "from importlib.metadata import version\n"
        "try:\n"
        "    v = platform.python_version() if name == 'asyncio' else version(name)\n"
        "except Exception:\n"
        "    v = getattr(m, '__version__', '?')\n"
        "c = getattr(m, 'COMPILED', None)\n"
        "print(json.dumps({'available': True, 'version': v, 'path': m.__file__,\n"
        "                  'compiled': None if c is None else bool(c)}))\n"
    )
    proc = subprocess.run(
        [python, "-c", code, loop.module],
        capture_output=True,
        text=True,
        env=loop.env(),
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"available": False, "error": proc.stderr.strip()[-500:]}
    desc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return desc


def summary(loop: Loop, desc: dict[str, Any]) -> str:
    if not desc["available"]:
        return f"{loop.label}: missing ({desc['error']})"
    text = f"{loop.label} {desc['version']}"
    if desc.get("compiled") is not None:
        text += " compiled" if desc["compiled"] else " PURE PYTHON"
    if loop.module == SUBJECT:
        text += f" [{desc['path']}]"
    return text


# -- table ------------------------------------------------------------------------------


def fmt(cell: Cell) -> str:
    if cell.per_op is None:
        return cell.status
    text = f"{cell.per_op:,.0f}"
    return f"{text} WRONG" if cell.status == "wrong" else text


def render(
    cases: Sequence[Case], loops: Sequence[Loop], cells: dict[tuple[str, str], Cell]
) -> list[str]:
    """Instructions per operation; ratios other/aloop (> 1: aloop needs fewer)."""
    subject = next((x for x in loops if x.label == SUBJECT), None)
    subject = subject or next((x for x in loops if x.module == SUBJECT), None)
    others = [x for x in loops if subject is not None and x is not subject]
    head = ["benchmark", "per", *(x.label for x in loops)]
    if subject is not None:
        head += [f"{o.label}/{subject.label}" for o in others]
    rows = [head, ["---"] * len(head)]
    for case in cases:
        what = f"echo {case.variant} {case.size // 1024} KiB" if case.kind == "echo" else case.name
        row = [what, case.unit, *(fmt(cells[(case.name, x.label)]) for x in loops)]
        if subject is not None:
            mine = cells[(case.name, subject.label)].per_op
            for other in others:
                theirs = cells[(case.name, other.label)].per_op
                if theirs is None or mine is None or mine <= 0:
                    row.append("-")
                else:
                    row.append(f"{theirs / mine:.2f}x")
        rows.append(row)
    return ["| " + " | ".join(r) + " |" for r in rows]


def render_diff(case: Case, base: Cell, other: Cell, labels: tuple[str, str], n: int) -> list[str]:
    """The `n` functions whose own instructions per operation changed most from base."""
    if base.per_op is None or other.per_op is None:
        return []
    names = set(base.functions) | set(other.functions)
    changes = {x: other.functions.get(x, 0.0) - base.functions.get(x, 0.0) for x in names}
    biggest = sorted(changes.items(), key=lambda item: -abs(item[1]))[:n]
    lines = [
        f"{case.name}: {labels[0]} {base.per_op:,.0f} -> {labels[1]} {other.per_op:,.0f} "
        f"instructions per {case.unit} ({other.per_op - base.per_op:+,.0f})"
    ]
    for name, change in biggest:
        was, now = base.functions.get(name, 0.0), other.functions.get(name, 0.0)
        lines.append(f"  {change:+10,.1f}  {was:10,.1f} -> {now:10,.1f}  {name}")
    return [*lines, ""]


def render_top(case: Case, loop: Loop, cell: Cell) -> list[str]:
    if not cell.top or cell.per_op is None:
        return []
    lines = [f"{case.name} on {loop.label}: {cell.per_op:,.0f} instructions per {case.unit}"]
    for name, per_op in cell.top:
        share = per_op / cell.per_op if cell.per_op else 0.0
        lines.append(f"  {per_op:10,.1f} {share:6.1%}  {name}")
    return [*lines, ""]


# -- main -------------------------------------------------------------------------------


def select_cases(spec: str | None) -> list[Case]:
    if not spec:
        return list(CASES)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    groups = {"core": [c for c in CASES if c.kind == "core"]}
    groups["echo"] = [c for c in CASES if c.kind == "echo"]
    chosen: list[Case] = []
    for want in wanted:
        found = groups.get(want) or [c for c in CASES if c.name.startswith(want)]
        if not found:
            raise SystemExit(f"no benchmark {want!r}; choose from core, echo, {', '.join(BY_NAME)}")
        chosen += [c for c in found if c not in chosen]
    return [c for c in CASES if c in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--loops",
        help="comma-separated: asyncio, uvloop, rloop, zuvloop, aloop, aloop@TREE "
        "(default: every one of the first five that imports)",
    )
    add("--bench", help=f"names or prefixes, or core / echo: {', '.join(BY_NAME)}")
    add("--top", type=int, default=0, metavar="N", help="top N functions per benchmark and loop")
    add(
        "--diff",
        metavar="A,B",
        help="two loops of --loops (e.g. aloop,aloop@TREE): the functions whose own "
        "instructions per operation differ most between them (--top N of them, default 15)",
    )
    add("--conns", type=int, default=DEFAULT_CONNS, help="echo connections (default 1)")
    add("--sizes", help="N1,N2 operations for every benchmark (default: per benchmark)")
    add("--python", default=sys.executable, help="interpreter to run the workloads under")
    add("--keep", type=Path, metavar="DIR", help="keep the callgrind.out files here")
    add("--json", type=Path, metavar="OUT", help="write the figures here")
    add("--allow-pure", action="store_true", help="count an aloop that is not compiled")
    add(
        "--replay",
        nargs="+",
        type=Path,
        metavar="IN",
        help="print the tables of saved --json files (merged, e.g. main's and a branch's)",
    )
    add("--child", nargs=3, metavar=("BENCH", "LOOP", "SCALES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sizes:
        n1, n2 = (int(x) for x in args.sizes.split(","))
        if not 0 < n1 < n2:
            parser.error("--sizes wants N1,N2 with 0 < N1 < N2")
        args.sizes = (n1, n2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        bench, loop, scales = args.child
        return child_core(bench, loop, [float(x) for x in scales.split(",")])
    run = replay(args) if args.replay else measure_all(args)
    header, info, cases, shown, cells = run
    diff: tuple[str, str] | None = None
    if args.diff:
        first, _, second = args.diff.partition(",")
        if not {first, second} <= {x.label for x in shown} or first == second:
            raise SystemExit(f"--diff {args.diff}: name two different loops of the table")
        diff = (first, second)
    lines = [*header, "", *render(cases, shown, cells)]
    if args.top:
        lines.append("")
        lines.append(f"Top {args.top} functions by own instructions per operation:")
        lines.append("")
        for case in cases:
            for loop in shown:
                cell = cells[(case.name, loop.label)]
                if cell.functions:  # a replayed file keeps every function
                    cell.top = sorted(cell.functions.items(), key=lambda x: -x[1])[: args.top]
                lines += render_top(case, loop, cell)
    if diff is not None:
        lines += [
            "",
            f"Largest changes of own instructions per operation, {diff[0]} -> {diff[1]}:",
            "",
        ]
        for case in cases:
            base, other = cells.get((case.name, diff[0])), cells.get((case.name, diff[1]))
            if base is not None and other is not None:
                lines += render_diff(case, base, other, diff, args.top or 15)
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "header": header,
            "loops": info,
            "cells": {f"{case}/{loop}": cell.__dict__ for (case, loop), cell in cells.items()},
        }
        args.json.write_text(json.dumps(data, indent=1))
    bad = [k for k, c in cells.items() if c.status in ("error", "wrong")]
    for case_name, label in bad:
        why = cells[(case_name, label)].error[:600]
        print(f"PROBLEM {case_name}/{label}: {why}", file=sys.stderr)
    return 1 if bad else 0


Run = tuple[
    list[str], dict[str, Any], list[Case], list[Loop], dict[tuple[str, str], Cell]
]  # header, loop descriptions, cases, loops shown, cells


def measure_all(args: argparse.Namespace) -> Run:
    """Describe the loops, then count every (case, loop) pair."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    cases = select_cases(args.bench)
    if args.sizes:
        cases = [Case(**{**c.__dict__, "sizes": args.sizes}) for c in cases]
    explicit = args.loops is not None
    specs = (args.loops or "asyncio,uvloop,rloop,zuvloop,aloop").split(",")
    loops = [Loop.parse(s.strip()) for s in specs if s.strip()]
    info = {x.label: describe(args.python, x) for x in loops}
    for loop in loops:
        desc = info[loop.label]
        if loop.module == SUBJECT and desc["available"] and not desc["compiled"]:
            if not args.allow_pure:
                raise SystemExit(
                    f"{loop.label} is not compiled ({desc['path']}): build it in place "
                    "(setup.py build_ext --inplace) or pass --allow-pure"
                )
    measured = [x for x in loops if info[x.label]["available"]]
    shown = loops if explicit else measured
    if any(c.kind == "echo" for c in cases):
        import net

        net.build_c()
    header = [
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"Python: {python_version(args.python)} ({args.python})",
        "Loops: " + "; ".join(summary(x, info[x.label]) for x in loops),
        "Method: instructions (callgrind Ir, user space) of run(N2) - run(N1), / (N2 - N1); "
        f"echo: server under callgrind, C client, {args.conns} connection(s), 1 KiB",
    ]
    print("\n".join(header), file=sys.stderr)
    cells: dict[tuple[str, str], Cell] = {}
    with tempfile.TemporaryDirectory(prefix="aloop-instr-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for case, loop in plan(cases, shown):
            if not info[loop.label]["available"]:
                cells[(case.name, loop.label)] = Cell(status="missing")
                continue
            started = time.perf_counter()
            cell = measure(args, case, loop, workdir, args.top)
            cells[(case.name, loop.label)] = cell
            print(
                f"{case.name:<9} {loop.label:<10} {fmt(cell):>12} per {case.unit} "
                f"({time.perf_counter() - started:.0f} s)"
                + (f" {cell.error.strip()[:300]}" if cell.error else ""),
                file=sys.stderr,
                flush=True,
            )
    return header, info, cases, shown, cells


def replay(args: argparse.Namespace) -> Run:
    """The cells of saved --json files, merged: one table, --top and --diff across them.

    A loop whose cells an earlier file already gave (the same benchmark and label)
    is renamed LABEL:FILE-STEM; files of other benchmarks merge into its rows."""
    header: list[str] = []
    info: dict[str, Any] = {}
    cells: dict[tuple[str, str], Cell] = {}
    shown: list[Loop] = []
    for path in args.replay:
        saved = json.loads(path.read_text())
        header += [f"[{path.name}] {line}" for line in saved["header"]]
        rename: dict[str, str] = {}
        for label, desc in saved["loops"].items():
            taken = any(
                f"{case}/{label}" in saved["cells"] for case, seen in cells if seen == label
            )
            new = f"{label}:{path.stem}" if taken else label
            rename[label] = new
            info.setdefault(new, desc)
        for key, data in saved["cells"].items():
            case_name, _, label = key.partition("/")
            cell = Cell(**data)
            (t1, t2), (n1, n2) = cell.totals, cell.ops  # JSON lists
            cell.totals, cell.ops = (t1, t2), (n1, n2)
            cell.top = [(name, value) for name, value in cell.top]
            label = rename.get(label, label)
            cells[(case_name, label)] = cell
            if label not in {x.label for x in shown}:
                loop = Loop.parse(label)
                shown.append(Loop(label, loop.module, loop.tree))
    wanted = {c.name for c in select_cases(args.bench)}
    cases = [c for c in CASES if c.name in wanted and any(k[0] == c.name for k in cells)]
    for case in cases:  # a loop missing from one file's cases
        for loop in shown:
            cells.setdefault((case.name, loop.label), Cell(status="missing"))
    return header, info, cases, shown, cells


def plan(cases: Sequence[Case], loops: Sequence[Loop]) -> Iterator[tuple[Case, Loop]]:
    for case in cases:
        for loop in loops:
            yield case, loop


def python_version(python: str) -> str:
    proc = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
