#!/usr/bin/env bash
# Run the venv Python of one version, e.g. `scripts/python.sh 3.14 -m pytest tests/test_tls.py`.
# 3.14 and 3.15 run inside the sid root (see env.sh); the venv must exist
# (scripts/test.sh or scripts/demo.sh builds it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
minor="$1"
shift
venv_run "$minor" python "$@"
