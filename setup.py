"""Build: compile the hot modules with mypyc; fall back to pure Python if that fails.

``ALOOP_PURE=1`` at install time skips compilation altogether. Without a
working C compiler (or Python's headers) the build says so and installs the
same source uncompiled, which runs everywhere, only slower.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

# setuptools commands that build no C: metadata and the sdist need no mypyc run.
NO_C_COMMANDS = frozenset({"egg_info", "dist_info", "sdist", "check", "clean"})

# Per Python: mypyc's C differs between versions (3.12+ skips reference counting
# of immortal objects), and scripts/env.sh builds every version at once; shared
# build/ directories let one version compile or package another's files.
BUILD_BASE = os.path.join("build", f"py{sys.version_info[0]}.{sys.version_info[1]}")


def compiled_modules() -> tuple[str, ...]:
    """The list in src/aloop/_purity.py, read without importing the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "_aloop_purity", os.path.join(here, "src", "aloop", "_purity.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.COMPILED_MODULES)


class OptionalBuildExt(build_ext):
    """A failed C build leaves a working pure-Python install, with a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            fallback(f"the mypyc build failed ({exc})")

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"aloop: could not compile {ext.name} ({exc})", file=sys.stderr)
            raise


def fallback(reason: str) -> None:
    """Say why this build installs aloop interpreted (pip shows it with -v)."""
    print(
        f"aloop: {reason}; installing pure Python (interpreted, slower). "
        "Install a C compiler and Python's headers, then reinstall with "
        "--no-cache-dir for the compiled loop.",
        file=sys.stderr,
    )


def builds_extensions() -> bool:
    """False for commands that only write metadata or the sdist."""
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return not commands or commands[0] not in NO_C_COMMANDS


def compiler_problem() -> str | None:
    """Why no C extension can be built here (``None`` when one can).

    Compiling a file that includes Python.h finds a missing compiler, a
    broken ``CC`` and missing headers in a fraction of a second, before
    mypyc spends its time type-checking and generating C.
    """
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)  # honours CC and CFLAGS as build_ext does
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint aloop_probe(void) { return 0; }\n")
        try:
            compiler.compile(
                [source], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]]
            )
        except Exception as exc:
            detail = str(exc) if len(str(exc)) < 200 else type(exc).__name__
            return f"no working C compiler: {compiler.compiler_so[0]!r} failed ({detail})"
    return None


def ext_modules() -> list:  # type: ignore[type-arg]
    if os.environ.get("ALOOP_PURE", "") not in ("", "0"):
        print("aloop: ALOOP_PURE is set; installing pure Python", file=sys.stderr)
        return []
    if not builds_extensions():
        return []
    problem = compiler_problem()
    if problem is not None:
        fallback(problem)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        fallback("mypyc (mypy) is not installed")
        return []
    paths = ["src/" + name.replace(".", "/") + ".py" for name in compiled_modules()]
    # mypyc type-checks everything aloop imports; the optional extras (the
    # OpenTelemetry API, rich) are not installed in a build environment, and
    # `mypy --strict` with them installed is the type check that counts.
    flags = ["--ignore-missing-imports"]
    return mypycify([*flags, *paths], opt_level="3", target_dir=os.path.join(BUILD_BASE, "mypyc"))


setup(
    ext_modules=ext_modules(),
    cmdclass={"build_ext": OptionalBuildExt},
    options={"build": {"build_base": BUILD_BASE}},
)
