#!/usr/bin/env bash
# The main job: build aloop (compiled by mypyc) into a venv and run the demo on it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Say loudly, on stderr, when the aloop that $1 imports runs interpreted: the
# build fell back to pure Python (no C compiler, a failed mypyc build). The
# demo still runs, correct but about half as fast.
warn_if_pure() {
    local python="$1"
    if "$python" -c "import aloop, sys; sys.exit(0 if aloop.COMPILED else 1)"; then
        return 0
    fi
    if [ -n "${ALOOP_PURE:-}" ] && [ "${ALOOP_PURE}" != "0" ]; then
        echo "aloop: ALOOP_PURE=${ALOOP_PURE} is set: running the demo interpreted (pure Python)." >&2
        return 0
    fi
    cat >&2 <<'EOF'
************************************************************************
WARNING: aloop is NOT compiled: the build fell back to pure Python.
  mypyc could not build the C extensions (is a C compiler such as gcc,
  and Python's headers, installed?). The demo runs anyway, correct but
  about 2x slower than compiled. Install a compiler and run this again.
************************************************************************
EOF
}

main() {
    cd "$ROOT"
    local python
    python="$(venv_for 3.11)/bin/python"
    echo "building aloop for Python 3.11 (first run: creates .venv/py3.11) ..."
    if ! ensure_venv 3.11 >/dev/null; then
        # ensure_venv refuses an uncompiled install; the demo can still run on one.
        "$python" -c "import aloop" 2>/dev/null || { echo "could not install aloop" >&2; exit 1; }
    fi
    warn_if_pure "$python"
    exec "$python" examples/demo.py
}

# Sourced (tests/test_demo.py), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
