"""Start ``ovserve`` with exactly the command line a test gives (OVMS's flags), unlike
``tests.transport.server.start_server``, which adds its own --config_path and --port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.transport.server import Server, await_start, free_port


def launch(*args: str, rest_port: int | None = None, host: str = "127.0.0.1") -> Server:
    """``ovserve ARGS --rest_port PORT``; returns once REST on ``host`` is live (not
    necessarily ready: a servable may have failed to load). ``grpc_port`` is 0: unknown."""
    rest_port = rest_port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "ovserve", "--rest_port", str(rest_port),
                                *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    server = Server(grpc_port=0, rest_port=rest_port, process=process, config=Path())
    return await_start(
        server, lambda: httpx.get(f"http://{host}:{rest_port}/v2/health/live",
                                  timeout=1).is_success, "start")
