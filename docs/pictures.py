"""Make the docs' pictures in docs/img/ from a real run (not run by the tests).

    .venv/py3.12/bin/python docs/pictures.py      # about half a minute

Starts docs/pictures_demo.py (a crawler on aloop with its monitor on), then:

- top.svg: ``python -m aloop top PID`` running in a tmux pane, captured with
  ``tmux capture-pane -e`` (the terminal's text and colours) and drawn as SVG
  by rich;
- web.png: the page of ``python -m aloop web PID``, screenshotted by headless
  Chromium (flags as in tests/test_web.py), reduced to a palette PNG;
- trace.svg: one second of ``python -m aloop trace PID``, the Perfetto /
  Chrome trace JSON, drawn as a timeline by this script (Perfetto's UI needs
  the network). One row per track: the loop's own callbacks and I/O waits,
  then each task's steps.

Needs tmux, Chromium (``chromium`` on PATH) and rich and pillow (in the dev venvs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IMG = HERE / "img"
PYTHON = sys.executable
COLUMNS, ROWS = 118, 24


def start_demo() -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "pictures_demo.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        raise SystemExit(f"the demo did not start: {line!r}")
    time.sleep(4.0)  # let the fetchers settle into their rhythm
    return proc


def shoot_top(pid: int) -> None:
    from rich.console import Console
    from rich.text import Text

    session = f"aloop-pictures-{os.getpid()}"
    command = f"{PYTHON} -m aloop top {pid} --interval 1"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(COLUMNS), "-y", str(ROWS), command],
        check=True,
    )
    try:
        time.sleep(3.5)
        screen = subprocess.run(
            ["tmux", "capture-pane", "-e", "-p", "-t", session],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    console = Console(record=True, width=COLUMNS, file=open(os.devnull, "w"))
    console.print(Text.from_ansi(screen.rstrip("\n")))
    svg = console.export_svg(title=f"python -m aloop top {pid}")
    (IMG / "top.svg").write_text(svg)


def shoot_web(pid: int) -> None:
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium on PATH")
    web = subprocess.Popen(
        [PYTHON, "-u", "-m", "aloop", "web", str(pid)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert web.stdout is not None
        url = web.stdout.readline().split()[1]  # "serving http://127.0.0.1:PORT/ for pid N"
        time.sleep(2.0)
        with tempfile.TemporaryDirectory() as tmp:
            shot = Path(tmp) / "web.png"
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--virtual-time-budget=10000",
                    f"--user-data-dir={tmp}/profile",
                    "--window-size=1100,760",
                    f"--screenshot={shot}",
                    url,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            image = Image.open(shot).convert("RGB")
            image.quantize(colors=64).save(IMG / "web.png", optimize=True)
    finally:
        web.terminate()
        web.wait()


def record_trace(pid: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace.json"
        subprocess.run(
            [PYTHON, "-m", "aloop", "trace", str(pid), "--seconds", "1", "-o", str(out)],
            check=True,
            capture_output=True,
        )
        data: dict[str, Any] = json.loads(out.read_text())
    return data


def draw_trace(data: dict[str, Any], window_us: float = 250_000.0) -> None:
    """The trace's timeline: a row per track, its slices as bars, over ``window_us``."""
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {
        e["tid"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    slices = [e for e in events if e.get("ph") == "X"]
    instants = [e for e in events if e.get("ph") == "i"]
    if not slices:
        raise SystemExit("the trace has no slices")
    start = min(e["ts"] for e in slices)
    end = start + window_us
    shown = [e for e in slices if e["ts"] < end]
    tracks = sorted({e["tid"] for e in shown}, key=lambda t: (t != 0, names.get(t, str(t))))
    label_w, width, row_h, top = 150, 990, 22, 40
    scale = (width - label_w - 40) / window_us
    height = top + row_h * len(tracks) + 56
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="20" font-size="13">aloop trace: the first {window_us / 1000:.0f} ms '
        f"of one second recorded by python -m aloop trace (one row per track)</text>",
    ]
    colours = {"I/O wait": "#b0c4de"}
    for row, tid in enumerate(tracks):
        y = top + row * row_h
        if row % 2:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#f4f4f4"/>')
        label = names.get(tid, f"track {tid}")[:20]
        out.append(f'<text x="8" y="{y + 15}">{_escape(label)}</text>')
        for e in shown:
            if e["tid"] != tid:
                continue
            x = label_w + (e["ts"] - start) * scale
            w = max(min(e.get("dur", 0), end - e["ts"]) * scale, 0.8)
            colour = colours.get(e["name"], "#e8a33d" if tid == 0 else "#4c8bd6")
            title = _escape(f"{e['name']} {e.get('dur', 0):.0f} us")
            out.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{colour}"><title>{title}</title></rect>'
            )
        for e in instants:
            if e["tid"] == tid and start <= e["ts"] < end:
                x = label_w + (e["ts"] - start) * scale
                out.append(
                    f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" y2="{y + row_h - 2}" '
                    f'stroke="#c0392b"/>'
                )
    axis_y = top + row_h * len(tracks) + 15
    for ms in range(0, int(window_us / 1000) + 1, 25):
        x = label_w + ms * 1000 * scale
        out.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle">{ms} ms</text>')
    legend = (
        ("#4c8bd6", "a task's step"),
        ("#e8a33d", "another callback"),
        ("#b0c4de", "waiting for I/O or a timer"),
        ("#c0392b", "task spawned or ended"),
    )
    x = label_w
    for colour, text in legend:
        out.append(f'<rect x="{x}" y="{axis_y + 14}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 17}" y="{axis_y + 24}">{text}</text>')
        x += 40 + 8 * len(text)
    out.append("</svg>")
    (IMG / "trace.svg").write_text("\n".join(out) + "\n")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main() -> None:
    IMG.mkdir(exist_ok=True)
    demo = start_demo()
    try:
        shoot_top(demo.pid)
        shoot_web(demo.pid)
        draw_trace(record_trace(demo.pid))
    finally:
        demo.terminate()
        demo.wait()
    for name in ("top.svg", "web.png", "trace.svg"):
        print(f"{IMG / name}: {(IMG / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
