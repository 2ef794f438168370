"""aloop installed from a wheel where there is no C compiler and no mypy (issue 18 item 7).

scripts/env.sh (``ensure_venv``) builds each Python's wheel once, compiled by
mypyc and repaired to a manylinux tag by auditwheel, into ``.venv/wheels/py3.X``
with its dependencies, and installs it into the shared venv. These tests
install that wheel again into a fresh venv with nothing else in it, with no
compiler on ``PATH`` and ``CC=/bin/false``, and run a program there. The pure
run (``ALOOP_PURE=1``) checks the other way in instead: the sdist, built
without a compiler, installs interpreted and says why.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.support import requires

import aloop
from aloop._purity import COMPILED_MODULES

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"
# ensure_venv's wheel_dir: beside the venv this test runs in.
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
WHEEL_DIR = Path(sys.prefix).parent / "wheels" / f"py{VERSION}"
# scripts/test.sh sets it (both modes): there a missing wheel is a failure.
UNDER_TEST_SH = "ALOOP_EXPECT_COMPILED" in os.environ
PURE_RUN = not aloop.COMPILED
COMPILERS = ("cc", "gcc", "clang", "c99", "tcc", f"{os.uname().machine}-linux-gnu-gcc")

# Run in the fresh venv: a server echo over loopback and a subprocess on
# aloop.run, then what the venv holds, as JSON.
PROGRAM = """
import asyncio, importlib.util, json, os, shutil, sys
import aloop
from aloop._purity import COMPILED_MODULES

async def echo(reader, writer):
    writer.write(await reader.read(100))
    await writer.drain()
    writer.close()
    await writer.wait_closed()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        await writer.drain()
        echoed = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child', 6 * 7)", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    return {
        "loop": type(asyncio.get_running_loop()).__module__,
        "echo": echoed.decode(),
        "child": [out.decode().strip(), child.returncode],
    }

try:
    import mypy
    has_mypy = True
except ImportError:
    has_mypy = False
result = aloop.run(main())
result.update(
    compiled=aloop.COMPILED,
    extensions=[
        name for name in COMPILED_MODULES
        if not importlib.util.find_spec(name).origin.endswith(".py")
    ],
    aloop_file=aloop.__file__,
    prefix=sys.prefix,
    base_prefix=sys.base_prefix,
    has_mypy=has_mypy,
    has_mypyc=importlib.util.find_spec("mypyc") is not None,
    compilers={name: shutil.which(name) for name in sys.argv[1:]},
    cc=os.environ.get("CC"),
)
print(json.dumps(result))
"""


def built_wheel() -> Path:
    """The wheel ensure_venv built for this Python (skips without one, outside test.sh)."""
    wheels = sorted(WHEEL_DIR.glob("aloop-*.whl"))
    if not wheels:
        if UNDER_TEST_SH:
            pytest.fail(f"scripts/env.sh built no wheel into {WHEEL_DIR}")
        pytest.skip(f"no wheel in {WHEEL_DIR}: scripts/test.sh's ensure_venv builds it")
    assert len(wheels) == 1, wheels
    return wheels[0]


def no_compiler_env(bin_dir: Path) -> dict[str, str]:
    """Only ``bin_dir`` on PATH, a C compiler that always fails, no pip config."""
    return {
        "PATH": str(bin_dir),
        "CC": "/bin/false",
        "CXX": "/bin/false",
        "HOME": os.environ.get("HOME", "/root"),
        "LC_ALL": "C.UTF-8",
        # /etc/pip.conf may point at local indexes; --no-index must mean nothing else.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def run(args: Sequence[object], env: dict[str, str], cwd: Path) -> str:
    """Run a command; its output, or a failure that shows it."""
    proc = subprocess.run(
        [str(arg) for arg in args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{output}"
    return output


def fresh_venv_with(wheels: list[Path], tmp_path: Path) -> Path:
    """A new venv (no system site-packages, no pip) holding aloop from ``wheels``' dirs.

    The running venv's pip installs into it (``--python``), from local files only.
    """
    venv = tmp_path / "clean"
    run([sys.executable, "-m", "venv", "--without-pip", venv], dict(os.environ), tmp_path)
    python = venv / "bin" / "python"
    links: list[object] = []
    for folder in dict.fromkeys(wheel.parent for wheel in wheels):
        links += ["--find-links", folder]
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-index"]
    install += ["--only-binary", ":all:", *links, *wheels]
    run(install, no_compiler_env(venv / "bin"), tmp_path)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    return python


def run_program(python: Path, tmp_path: Path) -> dict[str, object]:
    """PROGRAM's findings, run in the fresh venv without a compiler."""
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    env = no_compiler_env(python.parent)
    output = run([python, script, *COMPILERS], env, tmp_path)
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    venv = str(python.parent.parent)
    assert result["prefix"] == venv and result["base_prefix"] != venv
    assert str(result["aloop_file"]).startswith(venv + os.sep)
    assert result["has_mypy"] is False and result["has_mypyc"] is False
    assert result["compilers"] == dict.fromkeys(COMPILERS) and result["cc"] == "/bin/false"
    assert result["echo"] == "ping"
    assert result["child"] == ["child 42", 0]
    assert str(result["loop"]).startswith("aloop")
    return result


def run_demo(python: Path, tmp_path: Path) -> None:
    """The README's demo, in the fresh venv: it agrees with the stdlib loop."""
    output = run([python, ROOT / "examples" / "demo.py"], no_compiler_env(python.parent), tmp_path)
    assert "consumer got [0, 1, 4, 9, 16]" in output
    assert "printed the same." in output


@pytest.mark.skipif(PURE_RUN, reason="the pure run checks the sdist's fallback instead")
def test_wheel_installs_compiled_without_compiler_or_mypy(tmp_path: Path) -> None:
    wheel = built_wheel()
    assert re.search(rf"-cp{VERSION.replace('.', '')}-.*manylinux_\d+_\d+_", wheel.name), wheel
    python = fresh_venv_with([wheel], tmp_path)
    result = run_program(python, tmp_path)
    assert result["compiled"] is True
    assert result["extensions"] == list(COMPILED_MODULES)
    run_demo(python, tmp_path)


def copy_source(tmp_path: Path) -> Path:
    """What the sdist is made of, copied: building it writes into the tree."""
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info")
    shutil.copytree(ROOT / "src", tree / "src", ignore=skip)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    return tree


@pytest.mark.skipif(not PURE_RUN, reason="the compiled run checks the wheel instead")
@requires("build", "setuptools", "mypy")  # the sdist, then pip's offline build step
def test_sdist_without_compiler_installs_pure_and_says_why(tmp_path: Path) -> None:
    dependencies = built_wheel().parent  # mypy_extensions' wheel, for an offline install
    tree = copy_source(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOOP_", "PYTHON"))}
    sdist_cmd = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", "dist"]
    run([*sdist_cmd, tree], env, tmp_path)
    (sdist,) = (tmp_path / "dist").glob("aloop-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {"setup.py", "pyproject.toml", "src/aloop/_purity.py", "src/aloop/py.typed"}
    needed |= {"src/" + name.replace(".", "/") + ".py" for name in COMPILED_MODULES}
    assert needed <= names, needed - names

    # pip install's build step, offline: the running venv has setuptools and mypy.
    env = no_compiler_env(Path(sys.executable).parent)
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps"]
    output = run([*wheel_cmd, "--no-index", "--wheel-dir", "built", sdist], env, tmp_path)
    assert "aloop: no working C compiler: '/bin/false' failed" in output, output
    assert "installing pure Python (interpreted, slower)" in output
    (wheel,) = (tmp_path / "built").glob("aloop-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")

    python = fresh_venv_with([wheel, *dependencies.glob("mypy_extensions-*.whl")], tmp_path)
    result = run_program(python, tmp_path)
    assert result["compiled"] is False and result["extensions"] == []


def test_shared_venv_runs_the_built_wheel() -> None:
    """ensure_venv installs the very wheel it built (not a second, in-place build)."""
    if "site-packages" not in aloop.__file__:
        pytest.skip(f"aloop is imported from the source tree ({aloop.__file__}), not installed")
    wheel = built_wheel()
    installed = importlib.metadata.distribution("aloop").read_text("WHEEL") or ""
    tags = set(re.findall(r"^Tag: (\S+)$", installed, re.MULTILINE))
    expected = wheel.name.removesuffix(".whl").split("-")[2:]  # python, abi, platforms
    python_tag, abi, platforms = expected
    assert tags == {f"{python_tag}-{abi}-{plat}" for plat in platforms.split(".")}


def test_release_workflow_builds_compiled_wheels() -> None:
    """The cibuildwheel workflow (it cannot run here): valid YAML that says the right things."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (a dependency of dask) parses the workflow")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    steps = [step for job in jobs.values() for step in job["steps"]]
    assert any(str(step.get("uses", "")).startswith("pypa/cibuildwheel@") for step in steps)
    assert any("build --sdist" in str(step.get("run", "")) for step in steps)
    arches = jobs["wheels"]["strategy"]["matrix"]["include"]
    assert {entry["arch"] for entry in arches} >= {"x86_64", "aarch64"}
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert settings["build"].split() == [f"cp3{minor}-*" for minor in range(11, 16)]
    assert any("aloop.COMPILED" in command for command in settings["test-command"])
    assert settings["linux"]["archs"] == ["x86_64", "aarch64"]
