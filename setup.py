"""Build: compile the hot modules with mypyc; fall back to pure Python if that fails.

``ALOOP_PURE=1`` at install time skips compilation altogether.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


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
            print(f"aloop: mypyc build failed ({exc}); installing pure Python", file=sys.stderr)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"aloop: could not compile {ext.name} ({exc})", file=sys.stderr)
            raise


def ext_modules() -> list:  # type: ignore[type-arg]
    if os.environ.get("ALOOP_PURE", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("aloop: mypyc not available; installing pure Python", file=sys.stderr)
        return []
    paths = ["src/" + name.replace(".", "/") + ".py" for name in compiled_modules()]
    # One C directory per Python: mypyc's C differs between versions (3.12+ skips
    # reference counting of immortal objects), and scripts/test.sh builds all three
    # at once; a shared build/ let one version compile another's C.
    target_dir = os.path.join("build", f"mypyc-py{sys.version_info[0]}.{sys.version_info[1]}")
    return mypycify(paths, opt_level="3", target_dir=target_dir)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
