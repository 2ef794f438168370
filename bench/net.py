"""Network benchmarks: TCP echo and HTTP servers on asyncio, uvloop, rloop, zuvloop, aloop.

Every (case, loop) pair runs a server in a fresh process (bench/net/servers.py) and
drives it from a cheap load generator in another process: bench/net/build/echo_client
(C, epoll) for the echo cases, wrk for HTTP. The figure is the server's CPU time
(utime + stime from /proc/PID/stat) per request over the timed window only, plus
requests per second. A C epoll echo server (bench/net/echo_server.c) is the reference.

    python bench/net.py                        # full run, 3 repeats (~4.5 min on 2 cores)
    python bench/net.py --quick                # smoke run, ~20 s; figures meaningless
    python bench/net.py --bench protocol,http --loops uvloop,aloop --json out.json
    python bench/net.py --serve protocol --loop aloop --port 8888   # one server, for profiling
    python bench/net.py --replay out.json      # the tables of a saved run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from run import call_worker, fmt_value, loop_summary, machine, report_problems, rotation

HERE = Path(__file__).resolve().parent
NET = HERE / "net"
# One build per C library: the host and the sid root (3.14/3.15) share this
# checkout but not their glibc, and a binary linked on the newer one fails on the older.
BUILD = NET / "build" / "-".join(filter(None, platform.libc_ver())).replace(".", "_")
SERVERS = NET / "servers.py"
C_PROGRAMS = ("echo_client", "echo_server")
# The default --loops; those that do not import are left out (the header names them).
LOOPS = ("asyncio", "uvloop", "rloop", "zuvloop", "aloop")
# Not run by default: aloop with the monitor, per-step detail or a trace on.
OBSERVED = ("aloop-monitor", "aloop-detail", "aloop-trace")
SUBJECT = "aloop"
REFERENCE = "C"  # the pseudo-loop of the C epoll echo server
VARIANTS = ("protocol", "streams", "sockets")
SIZES = {"1k": 1024, "10k": 10 * 1024, "100k": 100 * 1024}
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Case:
    """One benchmark: an echo variant at one message size, the C reference, or HTTP."""

    name: str  # e.g. protocol-1k, c-epoll-1k, http
    kind: str  # echo | http
    variant: str  # protocol | streams | sockets | c-epoll | http
    size: int = 0  # echo message size in bytes

    @property
    def is_reference(self) -> bool:
        return self.variant == "c-epoll"

    @property
    def title(self) -> str:
        if self.kind == "http":
            return "HTTP keep-alive hello (wrk)"
        label = "C epoll reference" if self.is_reference else self.variant
        return f"echo {label}, {self.size // 1024} KiB"


def all_cases() -> list[Case]:
    """Per size: the C reference first, then the three Python variants; HTTP last."""
    cases: list[Case] = []
    for label, size in SIZES.items():
        cases.append(Case(f"c-epoll-{label}", "echo", "c-epoll", size))
        cases += [Case(f"{v}-{label}", "echo", v, size) for v in VARIANTS]
    cases.append(Case("http", "http", "http"))
    return cases


@dataclass
class Settings:
    """How long and how hard every run drives its server."""

    duration: float  # timed window, seconds (wrk: rounded up to whole seconds)
    warmup: float  # untimed load before the window, seconds
    conns: int  # concurrent connections
    python: str


# -- build and tools ----------------------------------------------------------------


def build_c() -> None:
    """Compile the C programs into bench/net/build/ when missing or out of date."""
    BUILD.mkdir(parents=True, exist_ok=True)
    for name in C_PROGRAMS:
        source, binary = NET / f"{name}.c", BUILD / name
        if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
            continue
        if shutil.which("gcc") is None:
            raise SystemExit("gcc is needed to build bench/net/*.c (apt-get install gcc)")
        # Linked under a private name, then renamed: two runs at once never
        # execute a half-written binary.
        partial = binary.with_name(f"{name}.{os.getpid()}")
        command = ["gcc", "-O2", "-Wall", "-o", str(partial), str(source)]
        print(" ".join(command), file=sys.stderr)
        subprocess.run(command, check=True)
        partial.replace(binary)


def ensure_wrk() -> str | None:
    """Path to wrk, installing the Debian package if missing; None if impossible."""
    found = shutil.which("wrk")
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    print("installing wrk (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)
    return shutil.which("wrk")


# -- one measurement ----------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of process `pid` (all its threads) in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_command(case: Case, loop: str, python: str) -> list[str]:
    if case.is_reference:
        return [str(BUILD / "echo_server"), "-p", "0"]
    return [python, str(SERVERS), case.variant, loop, "--port", "0"]


def read_port(proc: subprocess.Popen[str], timeout: float = STARTUP_TIMEOUT) -> int | str:
    """The port the server printed, or a status: 'missing: ...' / 'error: ...'."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return f"error: no port within {timeout:.0f} s"
    line = proc.stdout.readline().strip()
    if line.startswith("PORT "):
        return int(line.split()[1])
    if line.startswith("MISSING"):
        return f"missing: {line[8:]}"
    return f"error: server said {line!r} (exit {proc.poll()})"


def echo_load(port: int, case: Case, seconds: float, conns: int) -> dict[str, Any]:
    """Run echo_client; its JSON line plus the exit status."""
    command = [str(BUILD / "echo_client"), "-p", str(port), "-c", str(conns)]
    command += ["-s", str(case.size), "-d", f"{seconds:g}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return {"error": f"echo_client exit {proc.returncode}: {proc.stderr.strip()}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def wrk_load(wrk: str, port: int, seconds: float, conns: int) -> dict[str, Any]:
    """Run wrk -t1 and parse its summary into the echo_client result shape."""
    whole = max(1, round(seconds))
    command = [wrk, "-t1", f"-c{conns}", f"-d{whole}s", f"http://127.0.0.1:{port}/"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=whole + 30)
    text = proc.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if proc.returncode != 0 or total is None:
        return {"error": f"wrk exit {proc.returncode}: {(text + proc.stderr).strip()[-500:]}"}
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}.get(total.group(3), 1.0)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    wrong = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    return {
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) * scale,
        "wrong": wrong,
        "error": "",
        "wrk": text,
    }


def drive(case: Case, port: int, seconds: float, settings: Settings, wrk: str | None) -> Any:
    if case.kind == "http":
        if wrk is None:
            return {"error": "wrk is not installed"}
        return wrk_load(wrk, port, seconds, settings.conns)
    return echo_load(port, case, seconds, settings.conns)


def timed_window(
    proc: subprocess.Popen[str], case: Case, port: int, settings: Settings, wrk: str | None
) -> dict[str, Any]:
    """Warm up, then measure server CPU (from /proc) around one timed client run."""
    if settings.warmup > 0 and (case.kind == "echo" or settings.warmup >= 0.5):
        drive(case, port, settings.warmup, settings, wrk)
    (user0, sys0), child0, wall0 = cpu_times(proc.pid), children_cpu(), time.perf_counter()
    load = drive(case, port, settings.duration, settings, wrk)
    wall = time.perf_counter() - wall0
    user1, sys1 = cpu_times(proc.pid)
    load.update(
        server_cpu_s=user1 - user0 + sys1 - sys0,
        server_user_s=user1 - user0,
        server_sys_s=sys1 - sys0,
        client_cpu_s=children_cpu() - child0,
        window_s=wall,
    )
    return dict(load)


def summarize(load: dict[str, Any]) -> dict[str, Any]:
    """Turn a client result into a report with the figures."""
    if load.get("error"):
        return {"status": "error", "error": load["error"], **load}
    requests, seconds = load["requests"], load["seconds"]
    if requests <= 0 or seconds <= 0:
        return {"status": "error", "error": "no request completed", **load}
    return {
        "status": "wrong" if load["wrong"] else "ok",
        "cpu_us": load["server_cpu_s"] / requests * 1e6,
        "user_us": load["server_user_s"] / requests * 1e6,
        "rps": requests / seconds,
        "server_util": load["server_cpu_s"] / load["window_s"],
        "client_util": load["client_cpu_s"] / load["window_s"],
        **load,
    }


def measure_one(case: Case, loop: str, settings: Settings, wrk: str | None) -> dict[str, Any]:
    """Start a fresh server, measure it, stop it."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            server_command(case, loop, settings.python),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            port = read_port(proc)
            if isinstance(port, str):
                status, _, why = port.partition(": ")
                return {"status": status, "error": why + stderr_tail(errors)}
            try:
                report = summarize(timed_window(proc, case, port, settings, wrk))
            except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
                report = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            stop(proc)
        if report["status"] == "error":
            report["error"] += stderr_tail(errors)
        return report


def stderr_tail(errors: IO[str]) -> str:
    errors.seek(0)
    tail = errors.read().strip()[-1500:]
    return f"\n{tail}" if tail else ""


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- schedule -----------------------------------------------------------------------


def schedule(
    cases: Sequence[Case], loops: Sequence[str], repeat: int
) -> Iterator[tuple[int, Case, str]]:
    """Yield (repeat, case, loop): loops innermost, rotated every repeat; C once."""
    for rep in range(repeat):
        order = rotation(loops, rep)
        for case in cases:
            for loop in [REFERENCE] if case.is_reference else order:
                yield rep, case, loop


def run_all(
    cases: Sequence[Case], loops: Sequence[str], repeat: int, settings: Settings
) -> list[dict[str, Any]]:
    wrk = ensure_wrk() if any(c.kind == "http" for c in cases) else None
    plan = list(schedule(cases, loops, repeat))
    reports: list[dict[str, Any]] = []
    for i, (rep, case, loop) in enumerate(plan, 1):
        report = measure_one(case, loop, settings, wrk)
        report.update(repeat=rep, case=case.name, loop=loop)
        reports.append(report)
        progress(i, len(plan), report)
    return reports


def progress(i: int, total: int, report: dict[str, Any]) -> None:
    if report["status"] in ("ok", "wrong"):
        text = (
            f"{report['cpu_us']:.2f} us/req (user {report['user_us']:.2f}), "
            f"{report['rps']:,.0f} req/s, server "
            f"{report['server_util']:.0%} CPU, client {report['client_util']:.0%}"
        )
        text += " WRONG" if report["status"] == "wrong" else ""
    else:
        text = f"{report['status']}: {report.get('error', '').strip().splitlines()[0:1]}"
    print(f"[{i}/{total}] {report['case']:<13} {report['loop']:<8} {text}", file=sys.stderr)


# -- table --------------------------------------------------------------------------


@dataclass
class Cell:
    """All samples of one (case, loop) pair."""

    cpu_us: list[float] = field(default_factory=list)
    user_us: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    status: str = "missing"  # ok | missing | error | wrong
    errors: list[str] = field(default_factory=list)
    rounds: dict[int, dict[str, float]] = field(default_factory=dict)  # repeat -> figures

    def add(self, report: dict[str, Any]) -> None:
        if report["status"] in ("ok", "wrong"):
            self.cpu_us.append(report["cpu_us"])
            self.user_us.append(report["user_us"])
            self.rps.append(report["rps"])
            self.rounds[report.get("repeat", len(self.rounds))] = report
        if report["status"] != "ok":
            self.errors.append(str(report.get("error") or report["status"]))
        if self.status in ("missing", "ok") or report["status"] == "wrong":
            self.status = report["status"] if self.status != "wrong" else "wrong"

    def samples(self, metric: str) -> list[float]:
        values: list[float] = getattr(self, metric)
        return values

    def median(self, metric: str) -> float | None:
        values = self.samples(metric)
        return statistics.median(values) if values and self.status != "error" else None

    def spread(self, metric: str) -> float | None:
        values, median = self.samples(metric), self.median(metric)
        if len(values) < 2 or not median:
            return None
        return (max(values) - min(values)) / median


Table = dict[str, dict[str, Cell]]  # case name -> loop (or "C") -> cell


def tabulate(reports: list[dict[str, Any]], cases: Sequence[Case], loops: Sequence[str]) -> Table:
    table: Table = {c.name: {x: Cell() for x in [*loops, REFERENCE]} for c in cases}
    for report in reports:
        cell = table.get(report["case"], {}).get(report["loop"])
        if cell is not None:
            cell.add(report)
    return table


def fmt_cell(cell: Cell, metric: str, scale: float) -> str:
    if cell.status in ("missing", "error"):
        return cell.status
    median = cell.median(metric)
    text = fmt_value(None if median is None else median * scale)
    return f"{text} WRONG" if cell.status == "wrong" else text


def ratio(num: float | None, den: float | None) -> str:
    return "-" if num is None or den is None or den <= 0 else f"{num / den:.2f}x"


def paired_ratio(num: Cell, den: Cell, metric: str) -> str:
    """The median over rounds of num/den within a round.

    A round runs every loop back to back, so both sides of a ratio saw the
    machine at about the same speed; on a shared VM that speed changes
    between rounds more than the loops differ.
    """
    if num.status == "error" or den.status == "error":
        return "-"
    pairs = [
        (figures[metric], den.rounds[rep][metric])
        for rep, figures in num.rounds.items()
        if rep in den.rounds and den.rounds[rep][metric] > 0
    ]
    if not pairs:
        return ratio(num.median(metric), den.median(metric))
    return f"{statistics.median(a / b for a, b in pairs):.2f}x"


def better_ratio(other: Cell, subject: Cell, metric: str) -> str:
    """> 1 means aloop is better: other/aloop for CPU, aloop/other for throughput."""
    if metric == "rps":
        return paired_ratio(subject, other, metric)
    return paired_ratio(other, subject, metric)


def reference_for(case: Case, table: Table) -> Cell | None:
    if case.kind != "echo":
        return None
    return table.get(f"c-epoll-{case.name.rsplit('-', 1)[1]}", {}).get(REFERENCE)


def render(table: Table, cases: Sequence[Case], loops: Sequence[str], metric: str) -> list[str]:
    """One markdown table of `metric` (cpu_us, user_us or rps)."""
    subject = SUBJECT if SUBJECT in loops else None
    others = [x for x in loops if subject and x != subject]
    vs_c = subject is not None and metric != "user_us"  # C's user time is ~0 ticks
    scale = 1e-3 if metric == "rps" else 1.0
    head = ["case", *loops, "C epoll"]
    head += [f"{subject}/{o}" if metric == "rps" else f"{o}/{subject}" for o in others]
    head += [f"{subject}/C"] if vs_c else []
    head += ["spread"]
    rows = [head, ["---"] * len(head)]
    for case in cases:
        cells = table[case.name]
        if case.is_reference:
            row = [case.title, *("" for _ in loops), fmt_cell(cells[REFERENCE], metric, scale)]
            row += [""] * (len(others) + vs_c)
        else:
            ref = reference_for(case, table)
            row = [case.title, *(fmt_cell(cells[x], metric, scale) for x in loops), ""]
            row += [better_ratio(cells[o], cells[SUBJECT], metric) for o in others]
            if vs_c:
                row.append("-" if ref is None else paired_ratio(cells[SUBJECT], ref, metric))
        spreads = [s for c in cells.values() if (s := c.spread(metric)) is not None]
        row.append(f"{max(spreads):.0%}" if spreads else "-")
        rows.append(row)
    return ["| " + " | ".join(r) + " |" for r in rows]


# -- main ---------------------------------------------------------------------------


def select_cases(spec: str | None) -> list[Case]:
    """Names (protocol-1k), variants (protocol, http, c-epoll) or sizes (1k); C refs kept."""
    cases = all_cases()
    if not spec:
        return cases
    wanted = {s.strip() for s in spec.split(",") if s.strip()}
    chosen = [c for c in cases if wanted & {c.name, c.variant, c.name.rsplit("-", 1)[-1]}]
    if not chosen:
        raise SystemExit(
            f"no case matches {spec!r}; choose from {', '.join(c.name for c in cases)}"
        )
    sizes = {c.size for c in chosen if c.kind == "echo"}
    return [c for c in cases if c in chosen or (c.is_reference and c.size in sizes)]


def select_loops(spec: str) -> list[str]:
    loops = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [x for x in loops if x not in LOOPS + OBSERVED]
    if unknown or not loops:
        raise SystemExit(f"unknown loop(s) {unknown}; choose from {', '.join(LOOPS + OBSERVED)}")
    return loops


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--loops", default=",".join(LOOPS), help="comma-separated loops (default: %(default)s)")
    add("--bench", help="comma-separated case names, variants or sizes, e.g. protocol,1k,http")
    add("--repeat", type=int, help="runs per pair (default 3; --quick: 1)")
    add("--quick", action="store_true", help="smoke run: short windows, one repeat")
    add("--duration", type=float, help="timed window per run, s (default 2; --quick: 0.3)")
    add("--warmup", type=float, help="untimed load before it, s (default 0.5; --quick: 0.1)")
    add("--conns", type=int, default=10, help="concurrent connections (default 10)")
    add("--python", default=sys.executable, help="interpreter to run the servers under")
    add("--json", type=Path, metavar="OUT", help="write every sample here")
    add("--replay", type=Path, metavar="IN", help="render the tables of a saved --json file")
    add("--serve", choices=[*VARIANTS, "http", "c-epoll"], help="run one server until killed")
    add("--loop", default=SUBJECT, choices=LOOPS, help="loop for --serve")
    add("--port", type=int, default=0, help="port for --serve (0: ephemeral)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.duration = args.duration or (0.3 if quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.1 if quick else 0.5)
    if args.repeat < 1 or args.duration <= 0 or args.conns < 1:
        parser.error("--repeat, --duration and --conns must be positive")
    return args


def serve(args: argparse.Namespace) -> int:
    """Replace this process with one server (for perf / py-spy / callgrind)."""
    if args.serve == "c-epoll":
        build_c()
        command = [str(BUILD / "echo_server"), "-p", str(args.port)]
    else:
        command = [args.python, str(SERVERS), args.serve, args.loop, "--port", str(args.port)]
    sys.stdout.flush()
    os.execv(command[0], command)


def header(args: argparse.Namespace, loops: Sequence[str]) -> dict[str, Any]:
    if shutil.which(args.python) is None:
        raise SystemExit(f"no interpreter at {args.python}")
    base = [x for x in loops if x not in OBSERVED]
    if any(x in OBSERVED for x in loops) and SUBJECT not in base:
        base.append(SUBJECT)
    info = call_worker(args.python, ["info", *base], 120)
    if info["status"] != "ok":
        raise SystemExit(f"cannot run {args.python}: {info['error']}")
    for name in loops:
        if name in OBSERVED:  # the observed variants are aloop itself
            info["loops"][name] = info["loops"][SUBJECT]
    info["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info["machine"] = machine()
    info["aloop_compiled"] = info["loops"].get(SUBJECT, {}).get("compiled")
    return info


def header_lines(info: dict[str, Any], args: argparse.Namespace) -> list[str]:
    loops = "; ".join(loop_summary(n, d) for n, d in info["loops"].items())
    return [
        f"Date: {info['date']}",
        f"Python: {info['implementation']} {info['python']} ({info['executable']})",
        f"Loops: {loops}",
        f"Machine: {info['machine']}",
        f"Method: {args.repeat} run(s) per case and loop, each a fresh server process, loops "
        f"interleaved, median shown (ratios: the median of each round's ratio); "
        f"{args.conns} connections, {args.duration:g} s window "
        f"after {args.warmup:g} s warm-up (wrk: whole seconds); suite {info['suite_s']:.0f} s",
    ]


def measure(
    args: argparse.Namespace, cases: Sequence[Case], loops: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build the tools, describe the machine and run the whole schedule."""
    build_c()
    info = header(args, loops)
    loops = [x for x in loops if info["loops"][x]["available"]]
    if not loops:
        raise SystemExit(f"no loop imports under {args.python}: {info['loops']}")
    settings = Settings(args.duration, args.warmup, args.conns, args.python)
    started = time.perf_counter()
    reports = run_all(cases, loops, args.repeat, settings)
    info["suite_s"] = time.perf_counter() - started
    return info, reports


def replay(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Header and runs of a saved --json file; its settings replace the arguments'."""
    saved = json.loads(args.replay.read_text())
    args.repeat, args.duration = saved["repeat"], saved["duration"]
    args.warmup, args.conns = saved["warmup"], saved["conns"]
    return saved["info"], saved["runs"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    cases, loops = select_cases(args.bench), select_loops(args.loops)
    info, reports = replay(args) if args.replay else measure(args, cases, loops)
    ran = {(r["case"], r["loop"]) for r in reports}
    cases = [c for c in cases if any(name == c.name for name, _ in ran)]
    loops = [x for x in loops if any(loop == x for _, loop in ran)]
    table = tabulate(reports, cases, loops)
    lines = [
        *header_lines(info, args),
        "",
        "Server CPU microseconds per request (lower is better; ratios > 1 mean aloop is better):",
        "",
    ]
    lines += render(table, cases, loops, "cpu_us")
    lines += [
        "",
        "Of which user-mode CPU microseconds per request (the loop's own work; the "
        "rest is kernel time):",
        "",
    ]
    lines += render(table, cases, loops, "user_us")
    lines += ["", "Thousands of requests per second (ratios > 1 mean aloop is better):", ""]
    lines += render(table, cases, loops, "rps")
    print("\n".join(lines))
    if args.json and not args.replay:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings_json = {
            "repeat": args.repeat,
            "duration": args.duration,
            "warmup": args.warmup,
            "conns": args.conns,
        }
        args.json.write_text(json.dumps({"info": info, **settings_json, "runs": reports}, indent=1))
    return report_problems(table)


if __name__ == "__main__":
    sys.exit(main())
