#!/usr/bin/env python3
"""Compare CPython's asyncio test results on the stdlib loop and on aloop.

Usage::

    python tests/conformance/compare.py [--python PATH] [--loop aloop] [--module test_tasks ...]
        [--jobs N] [--timeout SECONDS] [--rerun N] [--json OUT.json] [-v]

Runs ``harness.py`` (in separate subprocesses of the target interpreter, several
at a time) once with ``--loop stdlib`` and once with the candidate loop for every
module in scope (``modules.py``), then prints per module: tests run, passed on
stdlib, passed on the candidate, and the regressions: tests that passed on stdlib
but not on the candidate and are not listed in ``exclusions.py``.

A regressed test is re-run ``--rerun`` times alone on the candidate, with nothing
else running; if it passes every time it is reported as *flaky* (it only failed
under load) instead of as a regression.  Use ``--rerun 0`` to count every failure.

Exit status: 0 if there is no regression, 1 if there is one (or a module ran no test
at all on the stdlib loop), 2 on usage errors.
``<repo>/src`` is prepended to ``PYTHONPATH`` (pure-Python aloop) when the interpreter
cannot import aloop by itself (``--src yes/no`` to force).  The environment, including
``ALOOP_PURE``, is passed on to the harness processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exclusions import EXCLUSIONS
from modules import cost, modules_for, shards

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "harness.py"
REPO_SRC = HERE.parent.parent / "src"
PASSING = frozenset({"pass", "xfail"})
DEFAULT_TIMEOUT = 20.0


@dataclass
class Regression:
    test_id: str
    baseline: str
    candidate: str
    headline: str
    details: str
    #: hung (timed out) or crashed its worker, or did not run at all
    died: bool = False
    reruns: list[str] = field(default_factory=list)


@dataclass
class ModuleComparison:
    module: str
    run: int = 0
    baseline_passed: int = 0
    candidate_passed: int = 0
    #: tests that created at least one candidate loop through the policy (None: unknown)
    candidate_on_loop: int | None = None
    regressions: list[Regression] = field(default_factory=list)
    flaky: list[Regression] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    #: tests that failed on stdlib but pass on the candidate (informational)
    improvements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    python: str
    executable: str
    baseline: str
    candidate: str
    baseline_loop_class: str | None
    candidate_loop_class: str | None
    candidate_origin: str | None
    modules: dict[str, ModuleComparison]
    skipped_modules: dict[str, str]
    adaptations: list[str]
    wall_time: float
    problems: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Regression]:
        return [r for m in self.modules.values() for r in m.regressions]


def headline(details: str | None) -> str:
    """The one line that best summarizes a failure's details."""
    if not details:
        return "(no details)"
    lines = [line for line in details.splitlines() if line.strip()]
    if lines[0].startswith(("timed out", "worker ")):
        return lines[0]
    for line in reversed(lines):
        if not line.startswith(
            (" ", "[...]", "---", "Traceback", "During handling", "The above exception")
        ):
            return line[:300]
    return lines[-1][:300]


def _died(record: dict[str, Any]) -> bool:
    """Whether the harness recorded this test as hung or as crashing its worker."""
    return "hung" in record


def python_version(python: str) -> tuple[str, tuple[int, int]]:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0]); print(*sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    major, minor = out[1].split()
    return out[0], (int(major), int(minor))


def _environment(python: str, use_src: bool | None) -> dict[str, str]:
    """The harness' environment; ``use_src=None``: add src/ only if aloop isn't importable."""
    env = dict(os.environ)
    if use_src is None:
        probe = subprocess.run([python, "-c", "import aloop"], env=env, capture_output=True)
        use_src = probe.returncode != 0
    if use_src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_SRC), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    return env


def run_harness(
    python: str,
    loop: str,
    module: str,
    *,
    shard: str = "0/1",
    only: list[str] | None = None,
    timeout: float,
    env: dict[str, str],
    workdir: Path,
) -> dict[str, Any]:
    """Run one harness subprocess and return its JSON report."""
    tag = f"{loop.replace(':', '_').replace('/', '_')}-{module}-{shard.replace('/', 'of')}"
    fd, name = tempfile.mkstemp(prefix=tag + "-", suffix=".json", dir=workdir)
    os.close(fd)
    out = Path(name)
    cmd = [
        python,
        str(HARNESS),
        "--loop",
        loop,
        "--module",
        module,
        "--shard",
        shard,
        "--timeout",
        str(timeout),
        "--json",
        str(out),
    ]
    for test_id in only or ():
        cmd += ["--only", test_id]
    # CPython's tests write scratch files (support.TESTFN) into the working
    # directory and may leave them behind when a worker dies: keep that in
    # the run's temporary directory, never in the repository.
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=workdir)
    try:
        report: dict[str, Any] = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError):
        report = {
            "loop": loop,
            "modules": {},
            "tests": {},
            "problems": [],
            "fatal": f"harness exited with {proc.returncode} without a report:\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}",
        }
    return report


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the shard reports of one (loop, module)."""
    merged: dict[str, Any] = {"tests": {}, "modules": {}, "problems": [], "fatal": None}
    for report in reports:
        merged["tests"].update(report["tests"])
        for name, meta in report["modules"].items():
            merged["modules"].setdefault(name, meta)
        merged["problems"] += report.get("problems", [])
        if report.get("fatal") and not merged["fatal"]:
            merged["fatal"] = report["fatal"]
        for key in ("python", "executable", "loop_class", "loop_origin", "adaptations"):
            if key in report:
                merged.setdefault(key, report[key])
    return merged


def _compare_module(
    module: str, baseline: dict[str, Any], candidate: dict[str, Any]
) -> ModuleComparison:
    result = ModuleComparison(module=module)
    base_tests: dict[str, Any] = baseline["tests"]
    cand_tests: dict[str, Any] = candidate["tests"]
    result.run = len(base_tests)
    for label, report in (("stdlib", baseline), ("candidate", candidate)):
        if report.get("fatal"):
            result.notes.append(f"{label} run failed: {headline(report['fatal'])}")
        meta = report["modules"].get(module)
        if meta is not None and meta.get("status") != "ran":
            result.notes.append(f"{label}: module {meta.get('status')}: {meta.get('reason')}")
        result.notes += [f"{label}: {p.splitlines()[0]}" for p in report.get("problems", [])]
    for test_id, base in sorted(base_tests.items()):
        cand = cand_tests.get(test_id)
        cand_outcome = cand["outcome"] if cand else "missing"
        base_ok = base["outcome"] in PASSING
        cand_ok = cand_outcome in PASSING
        result.baseline_passed += base_ok
        result.candidate_passed += cand_ok
        if not base_ok and cand_ok:
            result.improvements.append(test_id)
        if base_ok and not cand_ok:
            if test_id in EXCLUSIONS:
                result.excluded.append(test_id)
                continue
            details = (cand or {}).get("details") or (
                "test did not run on the candidate loop"
                + (f":\n{candidate['fatal']}" if candidate.get("fatal") else "")
            )
            result.regressions.append(
                Regression(
                    test_id=test_id,
                    baseline=base["outcome"],
                    candidate=cand_outcome,
                    headline=headline(details),
                    details=details,
                    died=cand is None or _died(cand),
                )
            )
    # Crashed/hung tests have no loop count; the others all have one if counting worked.
    loops = [t.get("loops") for t in cand_tests.values() if not _died(t)]
    if loops and all(n is not None for n in loops):
        result.candidate_on_loop = sum(1 for n in loops if n)
    extra = sorted(set(cand_tests) - set(base_tests))
    if extra:
        result.notes.append(f"{len(extra)} test(s) ran only on the candidate: {extra[:5]}")
    return result


def run_comparison(
    *,
    python: str = sys.executable,
    candidate: str = "aloop",
    baseline: str = "stdlib",
    modules: list[str] | None = None,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    rerun: int = 1,
    use_src: bool | None = None,
    keep: Path | None = None,
) -> Comparison:
    """Run baseline and candidate for ``modules`` and compare them."""
    started = time.monotonic()
    version_text, version = python_version(python)
    selection = modules_for(version)
    if modules is None:
        modules = list(selection.run)
        skipped = dict(selection.skipped)
    else:
        skipped = {m: r for m, r in selection.skipped.items() if m in modules}
        modules = [m for m in modules if m not in skipped]
    env = _environment(python, use_src)
    jobs = jobs or 2 * (os.cpu_count() or 1)

    with tempfile.TemporaryDirectory(prefix="aloop-compare-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # (role, loop, module, shard), most expensive modules first.
        roles = (("candidate", candidate), ("baseline", baseline))
        tasks = [
            (role, loop, module, f"{k}/{shards(module)}")
            for module in sorted(modules, key=cost, reverse=True)
            for k in range(shards(module))
            for role, loop in roles
        ]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                task: pool.submit(
                    run_harness,
                    python,
                    task[1],
                    task[2],
                    shard=task[3],
                    timeout=timeout,
                    env=env,
                    workdir=workdir,
                )
                for task in tasks
            }
            reports = {task: future.result() for task, future in futures.items()}

        comparison = Comparison(
            python=version_text,
            executable=python,
            baseline=baseline,
            candidate=candidate,
            baseline_loop_class=None,
            candidate_loop_class=None,
            candidate_origin=None,
            modules={},
            skipped_modules=skipped,
            adaptations=[],
            wall_time=0.0,
        )
        for module in modules:
            per_role = {
                role: _merge(
                    [r for (rl, _, m, _), r in reports.items() if rl == role and m == module]
                )
                for role, _ in roles
            }
            base, cand = per_role["baseline"], per_role["candidate"]
            comparison.baseline_loop_class = comparison.baseline_loop_class or base.get(
                "loop_class"
            )
            comparison.candidate_loop_class = comparison.candidate_loop_class or cand.get(
                "loop_class"
            )
            comparison.candidate_origin = comparison.candidate_origin or cand.get("loop_origin")
            for adaptation in cand.get("adaptations", []):
                if adaptation not in comparison.adaptations:
                    comparison.adaptations.append(adaptation)
            result = _compare_module(module, base, cand)
            comparison.modules[module] = result
            if result.run == 0:
                comparison.problems.append(
                    f"{module}: no test ran on {baseline}: {'; '.join(result.notes)}"
                )

        # Re-run regressions alone, to tell real failures from failures under load.
        for result in comparison.modules.values():
            if not result.regressions or rerun <= 0:
                continue
            # Hangs and crashes are not load artifacts: only re-run plain failures.
            rerun_ids = [r.test_id for r in result.regressions if not r.died]
            outcomes: dict[str, list[str]] = {test_id: [] for test_id in rerun_ids}
            for _ in range(rerun):
                if not rerun_ids:
                    break
                report = run_harness(
                    python,
                    candidate,
                    result.module,
                    only=rerun_ids,
                    timeout=timeout,
                    env=env,
                    workdir=workdir,
                )
                for test_id in rerun_ids:
                    record = report["tests"].get(test_id)
                    outcomes[test_id].append(record["outcome"] if record else "missing")
            still: list[Regression] = []
            for regression in result.regressions:
                regression.reruns = outcomes.get(regression.test_id, [])
                if regression.reruns and all(o in PASSING for o in regression.reruns):
                    result.flaky.append(regression)
                else:
                    still.append(regression)
            result.regressions = still
    comparison.wall_time = round(time.monotonic() - started, 1)
    return comparison


def format_table(comparison: Comparison, *, verbose: bool = False) -> str:
    c = comparison
    cand = c.candidate
    label = cand if len(cand) <= 8 else "cand."
    lines = [
        f"Python {c.python} ({c.executable})",
        f"baseline: {c.baseline} ({c.baseline_loop_class})  "
        f"candidate: {cand} ({c.candidate_loop_class})  wall time: {c.wall_time}s",
        f"candidate loaded from: {c.candidate_origin}",
        "",
        f"{'module':<26}{'run':>6}{'stdlib ok':>11}{label + ' ok':>11}{'excluded':>10}"
        f"{'regressed':>11}{'flaky':>7}{'on ' + label:>12}",
    ]
    totals = [0, 0, 0, 0, 0, 0]
    for m in c.modules.values():
        row = [
            m.run,
            m.baseline_passed,
            m.candidate_passed,
            len(m.excluded),
            len(m.regressions),
            len(m.flaky),
        ]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        on_loop = "?" if m.candidate_on_loop is None else str(m.candidate_on_loop)
        lines.append(
            f"{m.module:<26}{row[0]:>6}{row[1]:>11}{row[2]:>11}{row[3]:>10}"
            f"{row[4]:>11}{row[5]:>7}{on_loop:>12}"
        )
    lines.append(
        f"{'TOTAL':<26}{totals[0]:>6}{totals[1]:>11}{totals[2]:>11}{totals[3]:>10}"
        f"{totals[4]:>11}{totals[5]:>7}"
    )
    lines.append(
        f"('on {label}': tests that created at least one {cand} loop; the others only use "
        "the stdlib's virtual-time TestLoop, a mock, or no loop)"
    )
    for module, reason in c.skipped_modules.items():
        lines.append(f"{module:<26}  skipped: {reason}")
    for m in c.modules.values():
        for note in m.notes:
            lines.append(f"note [{m.module}]: {note}")
    for problem in c.problems:
        lines.append(f"PROBLEM: {problem}")
    if verbose:
        lines += ["", "harness adaptations:"] + [f"  {a}" for a in c.adaptations]
    regressions = c.regressions
    if regressions:
        lines += ["", f"REGRESSIONS ({len(regressions)}): passed on {c.baseline}, not on {cand}"]
        for r in regressions:
            reruns = f" (re-run: {', '.join(r.reruns)})" if r.reruns else ""
            lines.append(f"  {r.test_id}: {r.candidate}{reruns}: {r.headline}")
            if verbose:
                lines += ["    " + line for line in r.details.splitlines()]
    flaky = [r for m in c.modules.values() for r in m.flaky]
    if flaky:
        lines += [
            "",
            f"FLAKY ({len(flaky)}): failed on {cand} in the full run, passed when re-run alone",
        ]
        for r in flaky:
            lines.append(f"  {r.test_id}: {r.candidate}: {r.headline}")
            if verbose:
                lines += ["    " + line for line in r.details.splitlines()]
    if not regressions:
        lines += ["", "no regressions"]
    return "\n".join(lines)


def _absolute_command(python: str) -> str:
    """``python`` as an absolute path (a bare name is looked up on PATH)."""
    if os.sep in python:
        return os.path.abspath(python)
    return shutil.which(python) or python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare test.test_asyncio results on the stdlib loop and a candidate loop."
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter whose test suite to run (default: this one)",
    )
    parser.add_argument(
        "--loop",
        default="aloop",
        help="candidate: aloop, stdlib or module:attr (default %(default)s)",
    )
    parser.add_argument("--baseline", default="stdlib", help=argparse.SUPPRESS)
    parser.add_argument(
        "--module", action="append", help="module to compare (repeatable; default: all in scope)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="harness processes run at once (default: 2 per CPU)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="per-test timeout in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--rerun",
        type=int,
        default=1,
        help="re-run each regression alone this many times (default %(default)s)",
    )
    parser.add_argument(
        "--src",
        dest="use_src",
        choices=("auto", "yes", "no"),
        default="auto",
        help="prepend the repo's src/ to PYTHONPATH: yes, no, or auto (only if "
        "the interpreter can't import aloop otherwise; default)",
    )
    parser.add_argument("--keep", type=Path, help="keep the harness JSON reports in this dir")
    parser.add_argument("--json", type=Path, help="write the comparison as JSON here")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the tracebacks of regressions"
    )
    args = parser.parse_args(argv)
    comparison = run_comparison(
        # Absolute: the harness runs with a temporary working directory.
        python=_absolute_command(args.python),
        candidate=args.loop,
        baseline=args.baseline,
        modules=args.module,
        jobs=args.jobs,
        timeout=args.timeout,
        rerun=args.rerun,
        use_src={"auto": None, "yes": True, "no": False}[args.use_src],
        keep=args.keep,
    )
    print(format_table(comparison, verbose=args.verbose))
    if args.json:
        args.json.write_text(json.dumps(asdict(comparison), indent=1))
    return 1 if comparison.regressions or comparison.problems else 0


if __name__ == "__main__":
    sys.exit(main())
