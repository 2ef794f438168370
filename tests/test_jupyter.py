"""The Jupyter kernel on aloop: ``python -m aloop kernel install`` and the guide's notebook.

``examples/guide.ipynb`` holds the guide's cells as the guide has them. It runs
headless on two real kernels at once, the aloop kernel (installed into a temp
prefix by the install command) and ipykernel's stock ``python3``; each cell's
outputs must match between them (up to paths, addresses, task numbers and set
order), must be the lines the guide shows, and the aloop kernel's loop, and the
loop of every task, must be aloop's ``Loop``.

Cells that start tasks without awaiting them (``asyncio.create_task(main())``)
print after the cell's reply, as in Jupyter, where such output still lands
under the cell that started the task (ipykernel routes it by the cell's
message id). So each cell is followed by a hidden cell that waits for the
notebook's tasks (the guide's reader waiting a second before the next cell),
and outputs are filed by their parent message id, not by arrival.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ipykernel", reason="the kernel tests need ipykernel")
nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "guide.ipynb"
TIMEOUT = 120

# Waits for the tasks the notebook's cells started (their coroutines are
# compiled from cells, in ipykernel's per-process directory), then says nothing.
SETTLE = """\
import asyncio as _aloop_asyncio, os as _aloop_os
def _aloop_from_cell(task):
    code = getattr(task.get_coro(), "cr_code", None)
    folder = _aloop_os.path.dirname(code.co_filename) if code else ""
    return _aloop_os.path.basename(folder).startswith("ipykernel_")
_aloop_pending = [t for t in _aloop_asyncio.all_tasks()
                  if t is not _aloop_asyncio.current_task() and _aloop_from_cell(t)]
await _aloop_asyncio.wait_for(_aloop_asyncio.gather(*_aloop_pending, return_exceptions=True), 60)
del _aloop_asyncio, _aloop_os, _aloop_from_cell, _aloop_pending
"""

# The task tree as the notebook shows it (aloop kernel only).
RENDER = """\
import asyncio, aloop.inspect
async def _aloop_child():
    await asyncio.sleep(3600)
_aloop_task = asyncio.create_task(_aloop_child(), name="<child & co>")
await asyncio.sleep(0)
aloop.inspect.snapshot()
"""

# The loop the kernel runs cells on, and the loops of all its tasks.
PROBE = """\
import asyncio as _aloop_asyncio
def _aloop_kind(loop):
    return f"{type(loop).__module__}.{type(loop).__qualname__}"
print(_aloop_kind(_aloop_asyncio.get_running_loop()),
      sorted({_aloop_kind(t.get_loop()) for t in _aloop_asyncio.all_tasks()}))
del _aloop_asyncio, _aloop_kind
"""


@pytest.fixture(scope="module")
def kernels_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The aloop kernelspec installed into a temp prefix; Jupyter and IPython files in temp dirs."""
    root = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as mp:
        # Kernels find the spec (and write profiles, runtime files) here, not in ~.
        mp.setenv("JUPYTER_PATH", str(root / "prefix" / "share" / "jupyter"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        install = _aloop_cli("kernel", "install", "--prefix", str(root / "prefix"))
        assert install.returncode == 0, install.stderr
        yield root
    leftovers = list((root / "runtime").glob("kernel-*.json"))
    assert not leftovers, f"connection files left behind: {leftovers}"


def _aloop_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aloop", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_kernel_install_writes_a_kernelspec_that_launches_aloop(kernels_env: Path) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("aloop")
    assert Path(spec.resource_dir).is_relative_to(kernels_env / "prefix")
    assert spec.argv == [sys.executable, "-m", "aloop.jupyter", "-f", "{connection_file}"]
    assert spec.display_name == "Python 3 (aloop)"
    assert spec.language == "python"
    # Another name and display name, next to the first.
    named = _aloop_cli(
        "kernel", "install", "--prefix", str(kernels_env / "prefix"),
        "--name", "aloop-dev", "--display-name", "aloop dev",
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert "Installed kernelspec aloop-dev in " in named.stdout
    specs = KernelSpecManager().get_all_specs()
    assert specs["aloop-dev"]["spec"]["display_name"] == "aloop dev"
    assert "aloop" in specs


def test_kernel_command_help_and_bad_arguments(tmp_path: Path) -> None:
    helped = _aloop_cli("kernel", "install", "--help")
    assert helped.returncode == 0
    for option in ("--user", "--prefix", "--name", "--display-name", "--sys-prefix"):
        assert option in helped.stdout
    both = _aloop_cli("kernel", "install", "--user", "--prefix", "/nonexistent")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
    bad = _aloop_cli("kernel", "install", "--prefix", str(tmp_path), "--name", "bad name!")
    assert bad.returncode == 1
    assert "cannot install kernelspec 'bad name!': Invalid kernel name" in bad.stderr
    missing = _aloop_cli("kernel")
    assert missing.returncode == 2
    assert "install" in missing.stderr


def test_guide_notebook_runs_on_the_aloop_kernel_as_on_ipykernel(kernels_env: Path) -> None:
    """The guide's cells on aloop and on the stock kernel, side by side."""
    with asyncio.Runner() as runner:
        on_aloop, on_stock = runner.run(_both())
    (aloop_probe, aloop_cells), (stock_probe, stock_cells) = on_aloop, on_stock
    assert aloop_probe == "aloop.loop.Loop ['aloop.loop.Loop']\n", aloop_probe
    assert "aloop" not in stock_probe, stock_probe  # the control: ipykernel's own loop
    assert len(aloop_cells) == len(stock_cells)
    for index, (mine, theirs) in enumerate(zip(aloop_cells, stock_cells, strict=True)):
        assert _normal(mine) == _normal(theirs), f"code cell {index} differs"
    _check_against_guide(aloop_cells)


async def _both() -> tuple[tuple[str, list[list[dict[str, Any]]]], ...]:
    return tuple(await asyncio.gather(_execute("aloop"), _execute("python3")))


async def _execute(kernel_name: str) -> tuple[str, list[list[dict[str, Any]]]]:
    """Run the notebook's code cells; return the probe's output and each cell's outputs."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=TIMEOUT)
    # nbclient starts the kernel and, on leaving, shuts it down (also on error).
    async with client.async_setup_kernel():
        kc = client.kc
        cells = [cell for cell in nb.cells if cell.cell_type == "code"]
        ids = []
        for cell in cells:
            ids.append(await _run(kc, cell.source, silent=False))
            await _run(kc, SETTLE, silent=True)
        probe_id = await _run(kc, PROBE, silent=True)
        if kernel_name == "aloop":
            render_id = await _run(kc, RENDER, silent=False)
            await _run(kc, "_aloop_task.cancel()", silent=True)
        outputs = await _drain(kc)
    if kernel_name == "aloop":
        _check_render(outputs[render_id])
    for cell, msg_id in zip(cells, ids, strict=True):
        cell.outputs = outputs.get(msg_id, [])
    nbformat.validate(nb)
    probe = "".join(out.get("text", "") for out in outputs.get(probe_id, []))
    return probe, [[dict(out) for out in cell.outputs] for cell in cells]


async def _run(kc: Any, code: str, *, silent: bool) -> str:
    """Execute ``code``; wait for its reply; fail on an error."""
    msg_id: str = kc.execute(code, store_history=not silent, allow_stdin=False)
    while True:
        reply = await kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    assert content["status"] == "ok", f"{code!r}: {content.get('ename')}: {content.get('evalue')}"
    return msg_id


async def _drain(kc: Any) -> dict[str, list[Any]]:
    """Every output on IOPub up to the final idle, filed under its cell's message id."""
    # A last request: its idle status comes after all earlier output (one IOPub stream).
    last = kc.kernel_info()
    outputs: dict[str, list[Any]] = {}
    while True:
        msg = await kc.get_iopub_msg(timeout=TIMEOUT)
        parent = msg["parent_header"].get("msg_id")
        kind = msg["msg_type"]
        if kind == "status" and parent == last and msg["content"]["execution_state"] == "idle":
            return outputs
        if kind in ("stream", "execute_result", "display_data", "error"):
            _append(outputs.setdefault(parent, []), nbformat.v4.output_from_msg(msg))


def _check_render(outputs: list[Any]) -> None:
    """The snapshot rendered as an HTML table: the child under the cell's task, escaped."""
    (result,) = outputs
    page = result.data["text/html"]
    assert page.startswith('<table class="aloop-tasks">')
    assert "&lt;child &amp; co&gt;" in page
    assert "<child" not in page
    child = page.split("&lt;child &amp; co&gt;")[1].split("</tr>")[0]
    assert "<td>waiting</td>" in child
    assert "sleep" in child
    assert "_aloop_child() at " in child
    # The cell's own task is there too, running, and the kernel's tasks.
    assert "<td>running</td>" in page
    assert "Kernel.shell_main() at " in page or "shell_main() at " in page


def _append(outs: list[Any], out: Any) -> None:
    """Merge consecutive stream output of one stream, as Jupyter shows it."""
    if outs and out.output_type == "stream" and outs[-1].output_type == "stream":
        if outs[-1].name == out.name:
            outs[-1].text += out.text
            return
    outs.append(out)


def _normal(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Output text up to what differs between two kernels of one notebook."""
    result = []
    for out in outputs:
        text = out.get("text") or out.get("data", {}).get("text/plain", "")
        text = re.sub(r"0x[0-9a-f]+", "0x…", text)
        text = re.sub(r"ipykernel_\d+", "ipykernel_…", text)
        text = re.sub(r"Task-\d+", "Task-…", text)
        # Sets of tasks print in hash order.
        result.append(
            (out["output_type"], "\n".join(sorted(text.replace(",\n", "\n").split("\n"))))
        )
    return result


def _text(outputs: list[dict[str, Any]], kind: str) -> str:
    if kind == "stdout":
        return "".join(o["text"] for o in outputs if o["output_type"] == "stream")
    return "".join(o["data"]["text/plain"] for o in outputs if o["output_type"] == kind)


def _check_against_guide(cells: list[list[dict[str, Any]]]) -> None:
    """The outputs the guide shows under each cell (up to kernel paths and task numbers)."""
    assert cells[0] == []
    assert _text(cells[1], "stdout") == "<class 'coroutine'>\nhello from async world\n"
    assert _text(cells[2], "stdout") == "Hi from corutine\n"
    # The guide had run its 5.2 cell again before this one ("hello from async
    # world"); top to bottom, custom_coro is the one of 5.3.
    assert _text(cells[3], "stdout") == "Hi from corutine\n"
    assert _text(cells[4], "stdout") == "Hi from corutine\n"
    assert _text(cells[5], "execute_result") == "'RESULT'"
    # The kernel's own task (the guide's ipykernel 6 called it Kernel.dispatch_queue).
    current = _text(cells[6], "execute_result")
    assert re.fullmatch(
        r"<Task pending name='Task-\d+' coro=<Kernel\.\w+\(\) running at .*>", current
    )
    started = _text(cells[7], "execute_result")
    # The cell's file is named by the hash of its code: the guide's own name.
    shown = re.fullmatch(
        r"<Task pending name='(Task-\d+)' coro=<main\(\) running at (.*):4>>", started
    )
    assert shown, started
    assert os.path.basename(shown[2]) == "2760077547.py"
    task, where = shown[1], shown[2]
    assert _text(cells[7], "stdout") == (
        "main coroutine started\n"
        f"<Task pending name='{task}' coro=<main() running at {where}:10>>\n"
    )
    every = _text(cells[8], "execute_result")
    assert every.startswith("{<Task pending name='Task-") and "Kernel." in every
    many = _text(cells[9], "stdout").splitlines()
    assert many[:11] == ["main coroutine started"] + [f"task {i} is running" for i in range(10)]
    listed = many[11:]
    assert all(
        re.fullmatch(r"> Task-\d+, <coroutine object [\w.<>]+ at 0x[0-9a-f]+>", line)
        for line in listed
    )
    coroutines = sorted(line.split("<coroutine object ")[1].split(" ")[0] for line in listed)
    assert coroutines.count("task_coroutine") == 10
    assert coroutines.count("main") == 1


def test_snapshot_repr_html_is_an_escaped_tree() -> None:
    from aloop.inspect import Snapshot, TaskInfo

    def row(name: str, parent: str | None, state: str = "waiting") -> TaskInfo:
        return TaskInfo(
            name=name, state=state, parent=parent, children=(), awaiting="<Event & co>",
            stack=(f"{name}() at <cell>:1",), age=1.5, steps=3, cpu=0.0, cancelled_by=None,
        )  # fmt: skip

    page = Snapshot([row("b<1>", "a"), row("a", None, "running"), row("c", "b<1>")])._repr_html_()
    names = [part.split("</td>")[0] for part in page.split('em;text-align:left">')[1:]]
    assert names == ["a", "b&lt;1&gt;", "c"]  # parents first, depth first
    assert "padding-left:0.5em" in page and "padding-left:2.0em" in page
    assert "padding-left:3.5em" in page
    assert "&lt;Event &amp; co&gt;" in page and "<Event" not in page
    assert "<code>b&lt;1&gt;() at &lt;cell&gt;:1</code>" in page


def test_the_notebook_is_a_clean_nbformat_4_notebook_for_the_aloop_kernel() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert json.loads(NOTEBOOK.read_text(encoding="utf-8"))["nbformat"] == 4
    assert nb.metadata.kernelspec.name == "aloop"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) == 10
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert [cell.source.splitlines()[-1] for cell in code if "main()" in cell.source] == [
        "await main()",
        "asyncio.create_task(main())",
        "asyncio.create_task(main())",
    ]
