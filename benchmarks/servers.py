"""The servers a benchmark run measures, started on loopback with their logs in files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A server process; its output goes to ``log`` (a pipe nobody reads would fill up)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    rest_port: int
    grpc_port: int = 0

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, path: str, timeout: float = 180) -> Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; "
                                   f"see {self.log}")
            try:
                if httpx.get(self.rest_url + path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(name: str, command: list[str], log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})


def start_ovserve(name: str, config: Path, log: Path, env: dict[str, str],
                  *extra: str) -> Process:
    grpc_port, rest_port = free_port(), free_port()
    process = _spawn(name, [sys.executable, "-m", "ovserve", "--config_path", str(config),
                            "--port", str(grpc_port), "--rest_port", str(rest_port),
                            "--host", "127.0.0.1", *extra], log, env)
    return Process(name, process, log, rest_port, grpc_port).wait_ready("/v2/health/ready")


def start_llamacpp(python: Path, gguf: Path, log: Path, threads: int) -> Process:
    """llama-cpp-python's OpenAI server on the GGUF (its chat template from the GGUF). It
    serves one request at a time; the others wait."""
    port = free_port()
    process = _spawn("llama.cpp", [
        str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--n_ctx", "2048", "--verbose", "False",
        # by default a new request cuts off the one being streamed; queue them instead
        "--interrupt_requests", "False"], log)
    return Process("llama.cpp", process, log, port).wait_ready("/v1/models")


def start_xllamacpp(python: Path, gguf: Path, log: Path, threads: int,
                    parallel: int = 8) -> Process:
    """llama.cpp's own server with continuous batching (xllamacpp) on the GGUF: ``parallel``
    slots, ``threads`` threads (benchmarks/xllamacpp_server.py, in its own venv)."""
    port = free_port()
    process = _spawn("xllamacpp", [
        str(python), str(Path(__file__).resolve().parent / "xllamacpp_server.py"),
        "--model", str(gguf), "--port", str(port), "--parallel", str(parallel),
        "--threads", str(threads)], log)
    return Process("xllamacpp", process, log, port).wait_ready("/v1/models")
