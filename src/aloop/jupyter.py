"""A Jupyter kernel running on aloop: ipykernel with an aloop ``Loop`` as its event loop.

    python -m aloop kernel install --user        # kernelspec "aloop"
    jupyter lab                                  # pick "Python 3 (aloop)"

The kernelspec's launcher is ``python -m aloop.jupyter -f {connection_file}``:
it makes an aloop loop the main thread's current event loop
(``asyncio.set_event_loop``, which stays on 3.14+ and in 3.16 where the
policies are gone), then starts ipykernel, whose tornado ``IOLoop`` wraps the
current loop. Cells, top-level ``await`` and tasks they create run on it;
ipykernel's own service threads (control, IOPub) keep their stdlib loops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from typing import Any

__all__ = [
    "KERNEL_NAME",
    "add_kernel_command",
    "install",
    "kernel_argv",
    "launch",
    "run_kernel_command",
]

#: The kernelspec name ``python -m aloop kernel install`` uses by default.
KERNEL_NAME = "aloop"
DISPLAY_NAME = "Python 3 (aloop)"


def kernel_argv(executable: str | None = None) -> list[str]:
    """The kernelspec's ``argv``: this Python running ``aloop.jupyter``."""
    return [executable or sys.executable, "-m", "aloop.jupyter", "-f", "{connection_file}"]


def install(
    *,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
    user: bool = False,
    prefix: str | None = None,
) -> str:
    """Install the aloop kernelspec; return the directory it went to."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    overrides = {"argv": kernel_argv(), "display_name": display_name}
    with tempfile.TemporaryDirectory() as tmp:
        # ipykernel's resources (logos) with our argv and name.
        source = write_kernel_spec(os.path.join(tmp, name), overrides=overrides)
        dest: str = KernelSpecManager().install_kernel_spec(
            source, kernel_name=name, user=user, prefix=prefix
        )
    return dest


def add_kernel_command(subparsers: Any) -> None:
    """Add ``kernel install`` to ``python -m aloop``'s subcommands."""
    kernel = subparsers.add_parser(
        "kernel",
        help="Jupyter kernel running on aloop",
        description="Manage the Jupyter kernel that runs ipykernel on an aloop loop.",
    )
    actions = kernel.add_subparsers(dest="kernel_command", required=True)
    inst = actions.add_parser(
        "install",
        help="install the aloop kernelspec",
        description="Install a Jupyter kernelspec whose kernel is ipykernel on aloop, "
        "launched by this Python.",
    )
    inst.add_argument(
        "--name", default=KERNEL_NAME, help=f"kernelspec name (default: {KERNEL_NAME})"
    )
    inst.add_argument(
        "--display-name",
        default=DISPLAY_NAME,
        help=f"name shown in Jupyter's kernel list (default: {DISPLAY_NAME!r})",
    )
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user only")
    where.add_argument(
        "--prefix",
        help="install under PREFIX/share/jupyter/kernels "
        '(e.g. a virtualenv: --prefix "$VIRTUAL_ENV")',
    )
    where.add_argument(
        "--sys-prefix",
        action="store_const",
        const=sys.prefix,
        dest="prefix",
        help=f"install under this Python's prefix ({sys.prefix})",
    )


def run_kernel_command(args: argparse.Namespace) -> int:
    """Run ``python -m aloop kernel ...``; return the exit status."""
    if args.kernel_command != "install":  # pragma: no cover - argparse rejects others
        raise SystemExit(f"aloop kernel: unknown action {args.kernel_command!r}")
    try:
        dest = install(
            name=args.name, display_name=args.display_name, user=args.user, prefix=args.prefix
        )
    except ImportError as exc:
        print(f"aloop: the kernel needs ipykernel ({exc}): pip install ipykernel", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        hint = "; try --user or --sys-prefix" if isinstance(exc, PermissionError) else ""
        print(f"aloop: cannot install kernelspec {args.name!r}: {exc}{hint}", file=sys.stderr)
        return 1
    print(f"Installed kernelspec {args.name} in {dest}")
    return 0


def launch(argv: list[str] | None = None) -> None:
    """Start ipykernel with an aloop loop as the main thread's event loop."""
    import aloop

    loop = aloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv)
    finally:
        asyncio.set_event_loop(None)
        if not loop.is_closed():
            loop.close()


if __name__ == "__main__":
    launch()
