"""Compare event loops: every (benchmark, loop) pair runs in a fresh subprocess.

Loops are interleaved (for each repeat, for each benchmark, every loop in turn, the
order rotated per repeat) so that drift of a shared machine falls on all loops alike.
The table shows medians; ratios are other-loop figure / aloop figure, so > 1 means
aloop is faster (or smaller). Absolute times on a shared machine are noise: compare
loops within one run.

    python bench/run.py                       # full suite, 5 repeats
    python bench/run.py --quick --repeat 1    # smoke run, seconds
    PYTHONPATH=src python bench/run.py --bench chain,sleep0 --json out.json
    python bench/run.py --replay out.json --cpu   # same samples, CPU time per operation
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS, BY_NAME, Benchmark
from worker import LOOP_MODULES

WORKER = Path(__file__).resolve().with_name("worker.py")
SUBJECT = "aloop"
QUICK_SCALE = 0.01


@dataclass
class Cell:
    """All samples of one (benchmark, loop) pair."""

    values: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | missing | error | wrong (a correctness check failed)
    workload: str = ""
    errors: list[str] = field(default_factory=list)

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def spread(self) -> float | None:
        """(max - min) / median, or None with fewer than two samples."""
        median = self.median()
        if len(self.values) < 2 or not median:
            return None
        return (max(self.values) - min(self.values)) / median


Table = dict[str, dict[str, Cell]]  # bench name -> loop name -> cell


# -- subprocesses -------------------------------------------------------------------


def call_worker(python: str, args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run bench/worker.py with `args` under `python`; return its JSON report."""
    command = [python, str(WORKER), *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip()[-2000:]
        return {"status": "error", "error": f"exit {proc.returncode}: {tail}"}
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"status": "error", "error": f"no JSON report: {lines[-1][:200]!r}"}
    return report


def rotation(loops: Sequence[str], rep: int) -> list[str]:
    """The loop order of repeat ``rep``: shifted by one each repeat (bench/net.py too)."""
    shift = rep % len(loops)
    return [*loops[shift:], *loops[:shift]]


def schedule(
    benches: Sequence[Benchmark], loops: Sequence[str], repeat: int
) -> Iterator[tuple[int, Benchmark, str]]:
    """Yield (repeat, benchmark, loop), loops innermost and rotated every repeat."""
    for rep in range(repeat):
        order = rotation(loops, rep)
        for bench in benches:
            for loop in order:
                yield rep, bench, loop


def figure(report: dict[str, Any], cpu: bool) -> float:
    """The report's figure; with `cpu`, a wall-clock figure is rescaled to CPU time."""
    value: float = report["value"]
    extra = report["extra"]
    if cpu and BY_NAME[report["bench"]].clock == "wall" and extra["wall_s"] > 0:
        value *= extra["cpu_s"] / extra["wall_s"]
    return value


def unit(bench: Benchmark, cpu: bool) -> str:
    return f"CPU {bench.unit}" if cpu and bench.clock == "wall" else bench.unit


def record(cell: Cell, report: dict[str, Any], cpu: bool) -> None:
    status = report["status"]
    if status != "ok":
        cell.status = status
        cell.errors.append(report.get("error", ""))
        return
    cell.workload = report["workload"]
    cell.values.append(figure(report, cpu))
    if report["observed"] != report["expected"]:
        cell.status = "wrong"
        cell.errors.append(f"observed {report['observed']} != expected {report['expected']}")


def run_all(
    python: str,
    benches: Sequence[Benchmark],
    loops: Sequence[str],
    repeat: int,
    scale: float,
    timeout: float,
) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    total = repeat * len(benches) * len(loops)
    for i, (rep, bench, loop) in enumerate(schedule(benches, loops, repeat), 1):
        args = ["run", bench.name, loop, "--scale", repr(scale)]
        report = call_worker(python, args, timeout)
        report.update(repeat=rep, bench=bench.name, loop=loop)
        reports.append(report)
        progress(i, total, report)
    return reports


def tabulate(
    reports: list[dict[str, Any]], benches: Sequence[Benchmark], loops: Sequence[str], cpu: bool
) -> Table:
    """Cells for every benchmark and loop; a loop without any report is 'missing'."""
    table: Table = {b.name: {loop: Cell() for loop in loops} for b in benches}
    for report in reports:
        cell = table.get(report["bench"], {}).get(report["loop"])
        if cell is not None:
            record(cell, report, cpu)
    for cells in table.values():
        for cell in cells.values():
            if not cell.values and cell.status == "ok":
                cell.status = "missing"
    return table


def progress(i: int, total: int, report: dict[str, Any]) -> None:
    figure = (
        f"{report['value']:.4g} {report['unit']}" if report["status"] == "ok" else report["status"]
    )
    print(
        f"[{i}/{total}] {report['bench']:<10} {report['loop']:<8} {figure}",
        file=sys.stderr,
        flush=True,
    )


# -- header -------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loop_summary(name: str, desc: dict[str, Any]) -> str:
    if not desc["available"]:
        return f"{name}: missing ({desc['error']})"
    text = f"{name} {desc.get('version') or '?'}"
    if desc.get("compiled") is not None:
        text += " compiled (mypyc)" if desc["compiled"] else " pure Python"
    if name == SUBJECT and desc.get("path"):
        text += f" [{desc['path']}]"
    return text


def header_lines(info: dict[str, Any], repeat: int, scale: float, cpu: bool) -> list[str]:
    now = info["date"]
    loops = "; ".join(loop_summary(n, d) for n, d in info["loops"].items())
    return [
        f"Date: {now}",
        f"Python: {info['implementation']} {info['python']} ({info['executable']})",
        f"Loops: {loops}",
        f"Machine: {info['machine']}",
        f"Method: {repeat} run(s) per benchmark and loop, each in a fresh process, loops "
        f"interleaved, median shown; scale {scale:g}; "
        + (
            "process CPU time per operation"
            if cpu
            else "wall time (perf_counter) except where the unit says CPU"
        ),
    ]


# -- table --------------------------------------------------------------------------


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_cell(cell: Cell) -> str:
    if cell.status in ("missing", "error"):
        return cell.status
    text = fmt_value(cell.median())
    return f"{text} WRONG" if cell.status == "wrong" else text


def ratio(other: Cell, subject: Cell) -> str:
    a, b = other.median(), subject.median()
    if a is None or b is None or b <= 0 or "ok" not in (other.status, subject.status):
        return "-"
    return f"{a / b:.2f}x"


def max_spread(cells: dict[str, Cell]) -> str:
    spreads = [s for c in cells.values() if (s := c.spread()) is not None]
    return f"{max(spreads):.0%}" if spreads else "-"


def pick_subject(loops: Sequence[str], available: set[str]) -> str | None:
    """aloop if it ran, else the last available loop (so uvloop vs asyncio still shows)."""
    if SUBJECT in available:
        return SUBJECT
    candidates = [loop for loop in loops if loop in available]
    return candidates[-1] if len(candidates) > 1 else None


def render(
    table: Table, benches: Sequence[Benchmark], loops: Sequence[str], available: set[str], cpu: bool
) -> list[str]:
    subject = pick_subject(loops, available)
    others = [loop for loop in loops if subject and loop != subject and loop in available]
    head = ["benchmark", "unit", *loops, *(f"{subject} vs {o}" for o in others), "spread"]
    rows = [head, ["---"] * len(head)]
    for bench in benches:
        cells = table[bench.name]
        workload = next((c.workload for c in cells.values() if c.workload), "")
        row = [f"{bench.title}, {workload}" if workload else bench.title, unit(bench, cpu)]
        row += [fmt_cell(cells[loop]) for loop in loops]
        if subject:
            row += [ratio(cells[o], cells[subject]) for o in others]
        row.append(max_spread(cells))
        rows.append(row)
    return ["| " + " | ".join(r) + " |" for r in rows]


def report_problems(table: Mapping[str, Mapping[str, Any]]) -> int:
    """Print a line per failed or wrong cell to stderr; the exit status (bench/net.py's too)."""
    issues = [
        f"{bench}/{loop} {cell.status}: {cell.errors[0].strip()[:600]}"
        for bench, cells in table.items()
        for loop, cell in cells.items()
        if cell.status in ("error", "wrong")
    ]
    for issue in issues:
        print(f"PROBLEM {issue}", file=sys.stderr)
    return 1 if issues else 0


# -- main ---------------------------------------------------------------------------


def select_benches(spec: str | None) -> list[Benchmark]:
    """Comma-separated names or name prefixes; all benchmarks when empty."""
    if not spec:
        return list(BENCHMARKS)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = [b for b in BENCHMARKS if any(b.name.startswith(w) for w in wanted)]
    if not chosen:
        names = ", ".join(b.name for b in BENCHMARKS)
        raise SystemExit(f"no benchmark matches {spec!r}; choose from {names}")
    return chosen


def select_loops(spec: str) -> list[str]:
    loops = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [loop for loop in loops if loop not in LOOP_MODULES]
    if unknown or not loops:
        raise SystemExit(f"unknown loop(s) {unknown}; choose from {', '.join(LOOP_MODULES)}")
    return loops


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--loops",
        help=f"comma-separated loops (default: those of {','.join(LOOP_MODULES)} that import)",
    )
    parser.add_argument(
        "--bench",
        help="comma-separated benchmark names or prefixes: "
        + ", ".join(b.name for b in BENCHMARKS),
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per pair (default 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: scale {QUICK_SCALE:g} (seconds, not meaningful)",
    )
    parser.add_argument("--scale", type=float, help="workload scale factor (default 1)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter to run the benchmarks under"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write all samples here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="show process CPU time per operation instead of wall time",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="IN",
        help="render the table from a saved --json file instead of running",
    )
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat and --scale must be positive")
    return args


def json_report(
    info: dict[str, Any], args: argparse.Namespace, table: Table, reports: list[dict[str, Any]]
) -> dict[str, Any]:
    medians = {
        bench: {
            loop: {
                "median": cell.median(),
                "status": cell.status,
                "spread": cell.spread(),
                "values": cell.values,
            }
            for loop, cell in cells.items()
        }
        for bench, cells in table.items()
    }
    return {
        "info": info,
        "repeat": args.repeat,
        "scale": args.scale,
        "medians": medians,
        "runs": reports,
    }


def machine() -> str:
    return (
        f"nproc {len(os.sched_getaffinity(0))}, {cpu_model()}, {platform.system()} "
        f"{platform.release()}, load avg {os.getloadavg()[0]:.2f} at start"
    )


def measure(
    args: argparse.Namespace, benches: Sequence[Benchmark], loops: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Describe the interpreter and machine, then run the whole schedule."""
    info = call_worker(args.python, ["info", *loops], args.timeout)
    if info["status"] != "ok":
        raise SystemExit(f"cannot run {args.python}: {info['error']}")
    info["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info["machine"] = machine()
    available = [x for x in loops if info["loops"][x]["available"]]
    if not available:
        raise SystemExit(f"no loop imports under {args.python}: {info['loops']}")
    print(
        f"benchmarks: {', '.join(b.name for b in benches)}; loops: {', '.join(available)}; "
        f"scale {args.scale:g}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    reports = run_all(args.python, benches, available, args.repeat, args.scale, args.timeout)
    info["suite_s"] = time.perf_counter() - started
    return info, reports


def replay(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    saved = json.loads(args.replay.read_text())
    args.repeat, args.scale = saved["repeat"], saved["scale"]
    return saved["info"], saved["runs"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    explicit = args.loops is not None
    benches = select_benches(args.bench)
    loops = select_loops(args.loops or ",".join(LOOP_MODULES))
    info, reports = replay(args) if args.replay else measure(args, benches, loops)
    loops = [x for x in loops if x in info["loops"]]
    if not explicit:  # a loop asked for by name shows as missing; the default skips it
        loops = [x for x in loops if info["loops"][x]["available"]]
    ran = {r["bench"] for r in reports}
    benches = [b for b in benches if b.name in ran]
    available = {x for x in loops if info["loops"][x]["available"]}
    table = tabulate(reports, benches, loops, args.cpu)
    lines = [
        *header_lines(info, args.repeat, args.scale, args.cpu),
        f"Suite time: {info['suite_s']:.0f} s",
        "",
    ]
    lines += render(table, benches, loops, available, args.cpu)
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_report(info, args, table, reports), indent=1))
    return report_problems(table)


if __name__ == "__main__":
    sys.exit(main())
