#!/usr/bin/env bash
# The main job: build aloop (compiled by mypyc) into a venv and run the demo on it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
echo "building aloop for Python 3.11 (first run: creates .venv/py3.11) ..."
ensure_venv 3.11 >/dev/null
exec "$(venv_for 3.11)/bin/python" examples/demo.py
