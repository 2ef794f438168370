"""``python -m aloop web PID``: a live web page of a monitored program's tasks.

The command serves, on 127.0.0.1 only, a page that polls ``/api/ps`` (the
monitor's ``ps`` reply, fetched over the Unix socket) every second and
draws the task tree with states, per-task CPU time and a timeline of the
loop's utilisation.
"""

from __future__ import annotations

import http.server
import json
import os
from typing import Any

from aloop.tooling.monitor import request

__all__ = ["serve"]

_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_page.html")


def _handler(pid: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/":
                with open(_PAGE, "rb") as page:
                    self._send(200, "text/html; charset=utf-8", page.read())
            elif self.path == "/api/ps":
                try:
                    body: Any = request(pid, {"cmd": "ps"}, timeout=5)
                    status = 200
                except (OSError, RuntimeError) as exc:
                    body, status = {"error": str(exc)}, 502
                self._send(status, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the terminal for the URL

    return Handler


def serve(pid: int, port: int = 0) -> None:
    """Serve the page for ``pid`` until interrupted; print the URL first."""
    request(pid, {"cmd": "ps"}, timeout=5)  # fail now, clearly, if there is no monitor
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(pid))
    print(f"serving http://127.0.0.1:{server.server_address[1]}/ for pid {pid}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
