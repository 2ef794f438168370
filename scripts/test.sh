#!/usr/bin/env bash
# Run every check: lint, types and the docs build, then the test suite on Python 3.11 to 3.15,
# each both mypyc-compiled and interpreted (ALOOP_PURE=1).
# Usage: scripts/test.sh [pytest args...]   (e.g. -k timers, or a test path)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PYTEST_ARGS=("$@")
cd "$ROOT"
LOGS="$ROOT/.venv/logs"
mkdir -p "$LOGS"

echo "== building venvs with aloop compiled by mypyc"
ensure_sidroot >"$LOGS/sidroot.log" 2>&1 || { cat "$LOGS/sidroot.log"; echo "could not make the sid root"; exit 1; }
# Both use the host's apt-get: one after the other, beside the venv builds.
( ensure_chromium; ensure_services >"$LOGS/services.log" 2>&1 ) &
packages_pid=$!
pids=()
for minor in "${PYTHONS[@]}"; do
    ensure_venv "$minor" >"$LOGS/build-$minor.log" 2>&1 &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        cat "$LOGS/build-${PYTHONS[$i]}.log"
        echo "build failed for Python ${PYTHONS[$i]}"
        exit 1
    fi
done

if ! wait "$packages_pid"; then
    cat "$LOGS/services.log"
    echo "could not install PostgreSQL and Redis for the library tests"
    exit 1
fi
# Installed: a server that then fails to start fails its tests instead of skipping them.
export ALOOP_REQUIRE_SERVICES=1

echo "== ruff and mypy --strict"
lint="$(venv_for 3.11)/bin"
"$lint/ruff" check src tests bench setup.py
"$lint/ruff" format --check src tests bench setup.py
"$lint/mypy" --strict

# The docs site, warnings as errors: a broken link, anchor or API reference
# (a renamed module, a docstring gone) fails here (mkdocs.yml, docs/).
# (NO_MKDOCS_2_WARNING: mkdocs-material's banner about its end of life, May 2027.)
echo "== docs: mkdocs build --strict"
# Not --quiet: it hides the warnings from --strict, which then passes.
NO_MKDOCS_2_WARNING=1 "$lint/mkdocs" build --strict >"$LOGS/docs.log" 2>&1 \
    || { cat "$LOGS/docs.log"; echo "the docs build failed (mkdocs build --strict)"; exit 1; }

# One pytest run per (Python, mode), two at a time (the machine has 2 cores).
run_suite() {
    local minor="$1" mode="$2" pure=0 expect=1
    if [ "$mode" = pure ]; then pure=1; expect=0; fi
    ALOOP_PURE="$pure" ALOOP_EXPECT_COMPILED="$expect" \
        ALOOP_CONFORMANCE_TABLE="$LOGS/conformance-$minor-$mode.txt" \
        venv_run "$minor" python -m pytest -q -rfEs -p no:cacheprovider "${PYTEST_ARGS[@]}" \
        >"$LOGS/test-$minor-$mode.log" 2>&1
}

echo "== pytest on ${PYTHONS[*]}, compiled and pure"
jobs_list=()
for minor in "${PYTHONS[@]}"; do
    for mode in compiled pure; do jobs_list+=("$minor $mode"); done
done
declare -A status
running=()
for job in "${jobs_list[@]}"; do
    set -- $job
    ( run_suite "$1" "$2" ) &
    running+=("$!:$job")
    if [ "${#running[@]}" -ge 2 ]; then
        entry="${running[0]}"; running=("${running[@]:1}")
        if wait "${entry%%:*}"; then status["${entry#*:}"]=0; else status["${entry#*:}"]=1; fi
    fi
done
for entry in "${running[@]}"; do
    if wait "${entry%%:*}"; then status["${entry#*:}"]=0; else status["${entry#*:}"]=1; fi
done

passed=0; failed=0; bad=0
for job in "${jobs_list[@]}"; do
    set -- $job
    log="$LOGS/test-$1-$2.log"
    summary="$(grep -E '^=*.* (passed|failed|error)' "$log" | tail -n 1 || true)"
    echo "Python $1 $2: ${summary:-no summary (see $log)}"
    if [ "${status[$job]}" != 0 ]; then
        bad=1
        grep -E '^(FAILED|ERROR) ' "$log" || tail -n 40 "$log"
    fi
    p="$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)"
    f="$( (grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" || true) | awk '{n += $1} END {print n + 0}')"
    passed=$((passed + p)); failed=$((failed + f))
done
echo "== CPython test_asyncio on the stdlib loop and on aloop (run / pass on stdlib / pass on aloop)"
for job in "${jobs_list[@]}"; do
    set -- $job
    table="$LOGS/conformance-$1-$2.txt"
    if [ -f "$table" ]; then
        echo "Python $1 $2: $(awk '/^TOTAL/ {print $2 " / " $3 " / " $4 " (excluded " $5 ", regressed " $6 ")"}' "$table")"
    fi
done
echo "total: $passed passed, $failed failed"
exit "$bad"
