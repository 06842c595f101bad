"""``/metrics`` on a port of its own, served from a thread (as prometheus-client's
``start_http_server`` does): for a process whose HTTP front end is not reachable one by one,
such as a Ray Serve replica behind Serve's proxy."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

__all__ = ["MetricsEndpoint"]


class Renderer(Protocol):
    def render(self, accept: str = "") -> tuple[bytes, str]: ...


class MetricsEndpoint:
    """GET ``/metrics`` of ``metrics`` on ``host:port`` (port 0: any free one), in the format
    the scraper's ``Accept`` asks for; anything else 404."""

    def __init__(self, metrics: Renderer, host: str, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server calls it by this name
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                body, content_type = metrics.render(self.headers.get("Accept", ""))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes: not logged
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="ovserve-metrics", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
