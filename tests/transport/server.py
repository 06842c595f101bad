"""Start a real `ovserve` process on loopback with small test graphs, and stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from tritonclient.grpc import service_pb2_grpc

from tests.graphs import python_node, write_graph, write_handler

COMMON = '''
import struct, time
from ovserve.protocol.tensor import bytes_tensor, decode_bytes
def texts(tensor):
    if tensor.datatype != "BYTES":
        return [bytes(tensor).decode()]
    return [item.decode() for item in decode_bytes(tensor)]
'''

ECHO = COMMON + '''
class OvmsPythonModel:
    def execute(self, inputs):
        items = texts(inputs[0])
        count = Tensor("count", struct.pack("<i", len(items)), shape=[1], datatype="INT32")
        return [bytes_tensor("upper", [s.upper() for s in items]), count]
'''

WORDS = COMMON + '''
class OvmsPythonModel:
    def initialize(self, kwargs):
        self.delay = float(open(kwargs["base_path"] + "/delay").read())
    def execute(self, inputs):
        for text in texts(inputs[0]):
            for word in text.split():
                time.sleep(self.delay)
                yield [bytes_tensor("word", [word])]
        yield [Tensor("end_signal", b"")]
'''

ENDLESS = COMMON + '''
import itertools, pathlib
class OvmsPythonModel:
    def initialize(self, kwargs):
        self.marker = pathlib.Path(kwargs["base_path"]) / "closed"
    def execute(self, inputs):
        try:
            for i in itertools.count():
                time.sleep(0.02)
                yield [bytes_tensor("tick", [str(i)])]
        finally:
            self.marker.write_text("generator closed")
'''

FAIL = COMMON + '''
class OvmsPythonModel:
    def execute(self, inputs):
        raise RuntimeError("handler failed on purpose: " + texts(inputs[0])[0])
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(root: Path, word_delay: float = 0.0) -> Path:
    write_handler(root / "echo", ECHO)
    write_graph(root / "echo", ["text"], ["upper", "count"], [
        python_node("echoNode", "model.py", ["IN:text"], ["OUT:upper", "COUNT:count"])])
    write_handler(root / "words", WORDS)
    (root / "words" / "delay").write_text(str(word_delay))
    write_graph(root / "words", ["text"], ["word", "end_signal"], [
        python_node("wordsNode", "model.py", ["IN:text"], ["OUT:word", "END:end_signal"],
                    loopback=True)])
    write_handler(root / "endless", ENDLESS)
    write_graph(root / "endless", ["text"], ["tick"], [
        python_node("endlessNode", "model.py", ["IN:text"], ["OUT:tick"], loopback=True)])
    write_handler(root / "fail", FAIL)
    write_graph(root / "fail", ["text"], ["out"], [
        python_node("failNode", "model.py", ["IN:text"], ["OUT:out"])])
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "echo"}, {"name": "words"}, {"name": "endless"}, {"name": "fail"}]}))
    return config


@dataclass
class Endpoints:
    """Where a server under test listens, on loopback."""

    grpc_port: int
    rest_port: int

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.rest_port}"


@dataclass
class Server(Endpoints):
    process: subprocess.Popen[str]
    config: Path
    log: str = ""

    terminated: bool = False  # SIGTERM sent (a second one while it exits would kill it)

    def sigterm(self) -> None:
        """Send SIGTERM once: the server stops taking work and drains."""
        if not self.terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.terminated = True

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (unless sent already), wait, keep the server's output in ``log``; returns
        the exit code."""
        self.sigterm()
        try:
            self.log, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # never leave a server behind
            self.log, _ = self.process.communicate()
            raise
        return self.process.returncode

    def output(self) -> str:
        self.log, _ = self.process.communicate()
        return self.log


def start_server(
    config: Path, *extra: str, grpc_port: int | None = None, env: dict[str, str] | None = None,
    all_ready: bool = True,
) -> Server:
    """Start ovserve and wait until it is ready. ``all_ready=False`` for a configuration with
    servables that fail to load: wait until it serves (live), and check that it is not ready
    (KServe v2: the server is ready when every model is). A free port can be taken by another
    process between ``free_port`` and ovserve's bind: then it starts again on other ports."""
    for _ in range(2):
        try:
            return _start_server(config, *extra, grpc_port=grpc_port, env=env,
                                 all_ready=all_ready)
        except PortTaken:
            continue
    return _start_server(config, *extra, grpc_port=grpc_port, env=env, all_ready=all_ready)


class PortTaken(RuntimeError):
    """ovserve could not bind a port that was free a moment before."""


def _start_server(
    config: Path, *extra: str, grpc_port: int | None, env: dict[str, str] | None,
    all_ready: bool,
) -> Server:
    grpc_port = grpc_port or free_port()
    rest_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ovserve", "--config_path", str(config), "--port",
         str(grpc_port), "--rest_port", str(rest_port), "--host", "127.0.0.1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = Server(grpc_port=grpc_port, rest_port=rest_port, process=process, config=config)

    def started() -> bool:
        if all_ready:
            return httpx.get(f"{server.rest_url}/v2/health/ready", timeout=1).status_code == 200
        if httpx.get(f"{server.rest_url}/v2/health/live", timeout=1).status_code != 200:
            return False
        ready = httpx.get(f"{server.rest_url}/v2/health/ready", timeout=10)
        assert ready.status_code == 503, "ready while a servable failed to load"
        return True

    return await_start(server, started, "become ready")


def await_start(server: Server, started: Callable[[], bool], what: str) -> Server:
    """Poll ``started()`` until it holds (60 s at most); ovserve exiting first is an error
    with its output (``PortTaken`` when a port it was given was taken meanwhile)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.output()
            if "Address already in use" in output:
                raise PortTaken(output)
            raise RuntimeError(f"ovserve exited with {server.process.returncode}: {output}")
        try:
            if started():
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"ovserve did not {what} within 60 s")


def refused_infer(grpc_url: str, request: Any, timeout: float = 60) -> grpc.RpcError:
    """The error a ModelInfer call of ``request`` ends with (it must fail)."""
    with grpc.insecure_channel(grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(request, timeout=timeout)
        except grpc.RpcError as exc:
            return exc
    raise AssertionError("the request was answered, not refused")
