# Shared by scripts/*.sh: find the interpreters and build one venv per Python.
# Each venv gets the dev tools and aloop itself, compiled by mypyc.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONS=(3.11 3.12 3.13)
DEV_PACKAGES=(pytest "mypy==2.4.1" ruff uvloop setuptools wheel "pytest-asyncio>=1.4" anyio "rich>=13" pillow
    aiohttp httpx websockets uvicorn)

# The interpreter for a minor version: pyenv's newest install, else pythonX.Y on PATH.
python_for() {
    local minor="$1" version
    if command -v pyenv >/dev/null 2>&1; then
        version="$(pyenv versions --bare 2>/dev/null | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -V | tail -n 1)"
        if [ -n "$version" ]; then
            echo "$(pyenv prefix "$version")/bin/python$minor"
            return
        fi
    fi
    command -v "python$minor" || { echo "python$minor not found" >&2; return 1; }
}

venv_for() { echo "$ROOT/.venv/py$1"; }

# Create (once) the venv for a minor version and (re)install aloop into it.
ensure_venv() {
    local minor="$1" venv python
    venv="$(venv_for "$minor")"
    python="$(python_for "$minor")"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    # Quick when everything is already there; picks up packages added later.
    "$venv/bin/pip" install -q --disable-pip-version-check "${DEV_PACKAGES[@]}" 2>&1 \
        | grep -v "^WARNING: Location" || true
    # No build isolation: the venv already holds the pinned mypy (mypyc) and setuptools.
    "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
        --force-reinstall "$ROOT" 2>&1 | grep -v "^WARNING: Location" || true
    "$venv/bin/python" -c "import aloop, sys; sys.exit(0 if aloop.COMPILED else 1)" \
        || { echo "aloop did not compile under Python $minor" >&2; return 1; }
}

# Headless Chromium for the web page test (Debian's package); best effort:
# without it that test is skipped and says why.
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || return 0
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
        >/dev/null 2>&1 || echo "could not install chromium; the web page test will be skipped"
}
