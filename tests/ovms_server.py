"""Start ``ovserve`` with exactly the command line a test gives (OVMS's flags), unlike
``tests.transport.server.start_server``, which adds its own --config_path and --port."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.transport.server import Server, free_port


def launch(*args: str, rest_port: int | None = None, host: str = "127.0.0.1") -> Server:
    """``ovserve ARGS --rest_port PORT``; returns once REST on ``host`` is live (not
    necessarily ready: a servable may have failed to load). ``grpc_port`` is 0: unknown."""
    rest_port = rest_port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "ovserve", "--rest_port", str(rest_port),
                                *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    server = Server(grpc_port=0, rest_port=rest_port, process=process, config=Path())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ovserve exited with {process.returncode}: {server.output()}")
        try:
            if httpx.get(f"http://{host}:{rest_port}/v2/health/live", timeout=1).is_success:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise RuntimeError("ovserve did not start within 60 s")
