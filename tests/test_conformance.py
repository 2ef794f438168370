"""CPython's own asyncio tests must pass on aloop wherever they pass on the stdlib loop.

One case per ``test.test_asyncio`` module in scope for the running interpreter
(see ``tests/conformance/modules.py``).  The first case to run compares all the
selected modules at once (stdlib and aloop runs in parallel subprocesses, via
``tests/conformance/compare.py``); each case then asserts that its module has no
regression, printing the regressions' tracebacks otherwise.

Environment knobs:

* ``ALOOP_CONFORMANCE_LOOP``: candidate loop spec (default ``aloop``; e.g. ``stdlib``
  to check the harness itself, or ``package.module:factory``);
* ``ALOOP_CONFORMANCE_JOBS``, ``ALOOP_CONFORMANCE_TIMEOUT``, ``ALOOP_CONFORMANCE_RERUN``:
  passed to ``compare.run_comparison`` (parallel processes, per-test timeout in
  seconds, re-runs of each regression);
* ``ALOOP_CONFORMANCE_TABLE``: a file to write the comparison table to
  (``scripts/test.sh`` prints each run's totals from it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))

import compare
from modules import modules_for

_SELECTION = modules_for((sys.version_info[0], sys.version_info[1]))
_PARAMS = [pytest.param(m, id=m) for m in _SELECTION.run] + [
    pytest.param(m, id=m, marks=pytest.mark.skip(reason=reason))
    for m, reason in _SELECTION.skipped.items()
]


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> compare.Comparison:
    """Compare every module selected in this session, in one parallel run."""
    selected: list[str] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "originalname", None) == "test_asyncio_conformance" and callspec:
            module = callspec.params.get("module")
            if module in _SELECTION.run and module not in selected:
                selected.append(module)
    env = os.environ
    jobs = env.get("ALOOP_CONFORMANCE_JOBS")
    comparison = compare.run_comparison(
        python=sys.executable,
        candidate=env.get("ALOOP_CONFORMANCE_LOOP", "aloop"),
        modules=selected or list(_SELECTION.run),
        jobs=int(jobs) if jobs else None,
        timeout=float(env.get("ALOOP_CONFORMANCE_TIMEOUT", compare.DEFAULT_TIMEOUT)),
        rerun=int(env.get("ALOOP_CONFORMANCE_RERUN", "1")),
        use_src=False,  # the harness must test the aloop this interpreter imports
    )
    table_path = env.get("ALOOP_CONFORMANCE_TABLE")
    if table_path:
        Path(table_path).write_text(compare.format_table(comparison) + "\n")
    return comparison


@pytest.mark.parametrize("module", _PARAMS)
def test_asyncio_conformance(module: str, conformance: compare.Comparison) -> None:
    result = conformance.modules.get(module)
    assert result is not None, f"{module} was not compared"
    print(compare.format_table(conformance))
    assert result.run > 0, f"no test of {module} ran on the stdlib loop: {result.notes}"
    if result.regressions:
        report = [
            f"{len(result.regressions)} test(s) of {module} pass on the stdlib loop but not on "
            f"{conformance.candidate} ({conformance.candidate_loop_class}):"
        ]
        for r in result.regressions:
            report.append(f"\n=== {r.test_id}: {r.candidate} (re-runs: {r.reruns})\n{r.details}")
        pytest.fail("\n".join(report), pytrace=False)
