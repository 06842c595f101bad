"""Config reload (issue 27, item 4), on real servers with real clients: config.json, graph files,
handlers and plain models' version folders watched every --file_system_poll_wait_seconds and
reloaded by POST /v1/config/reload; GET /v1/config answers OVMS's status document.

Reload under load: 8 gRPC streams run while a servable is added, one removed and one changed;
none fails; the changed one's streams finish on the old handler while new requests get the new
one; the removed one's streams go on until the client closes them (it is UNLOADING meanwhile,
then END). Waits are for conditions, with a deadline; nothing is timed."""

from __future__ import annotations

import json
import os
import queue
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.engine.model_files import save, unary
from tests.graphs import python_node, write_graph, write_handler
from tests.transport.server import COMMON, ECHO, ENDLESS, Server, start_server

GATED = COMMON + '''
import pathlib
class OvmsPythonModel:
    """Sends the first word, then waits for the file ``release`` before the others."""
    def initialize(self, kwargs):
        self.release = pathlib.Path(kwargs["base_path"]) / "release"
    def execute(self, inputs):
        words = texts(inputs[0])[0].split()
        yield [bytes_tensor("word", [words[0]])]
        while not self.release.exists():
            time.sleep(0.01)
        for word in words[1:]:
            yield [bytes_tensor("word", [word])]
        yield [Tensor("end_signal", b"")]
'''

GATED_V2 = COMMON + '''
class OvmsPythonModel:
    """The changed handler: capitals, no waiting."""
    def execute(self, inputs):
        for word in texts(inputs[0])[0].split():
            yield [bytes_tensor("word", [word.upper()])]
        yield [Tensor("end_signal", b"")]
'''

SLOW_START = COMMON + '''
import pathlib
class OvmsPythonModel:
    """initialize waits for the file ``go``: the servable stays LOADING until then."""
    def initialize(self, kwargs):
        go = pathlib.Path(kwargs["base_path"]) / "go"
        while not go.exists():
            time.sleep(0.01)
    def execute(self, inputs):
        return [bytes_tensor("upper", [s.upper() for s in texts(inputs[0])])]
'''

TEXT = "the old handler answers every word"
DEADLINE = 60.0


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``deadline`` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write_graphs(root: Path) -> None:
    write_handler(root / "echo", ECHO)
    write_graph(root / "echo", ["text"], ["upper", "count"], [
        python_node("echoNode", "model.py", ["IN:text"], ["OUT:upper", "COUNT:count"])])
    write_handler(root / "gated", GATED)
    write_graph(root / "gated", ["text"], ["word", "end_signal"], [
        python_node("gatedNode", "model.py", ["IN:text"], ["OUT:word", "END:end_signal"],
                    loopback=True)])
    for name in ("endless", "gone"):
        write_handler(root / name, ENDLESS)
        write_graph(root / name, ["text"], ["tick"], [
            python_node("endlessNode", "model.py", ["IN:text"], ["OUT:tick"], loopback=True)])
    write_handler(root / "fresh", SLOW_START)
    write_graph(root / "fresh", ["text"], ["upper"], [
        python_node("freshNode", "model.py", ["IN:text"], ["OUT:upper"])])


def write_config(root: Path, names: list[str], models: list[dict[str, Any]] | None = None
                 ) -> Path:
    config = root / "config.json"
    config.write_text(json.dumps({
        "model_config_list": [{"config": m} for m in models or []],
        "mediapipe_config_list": [{"name": n} for n in names]}))
    return config


def config_status(server: Server) -> dict[str, Any]:
    reply = httpx.get(server.rest_url + "/v1/config", timeout=10)
    assert reply.status_code == 200, reply.text
    status: dict[str, Any] = reply.json()
    return status


def states(server: Server) -> dict[str, list[tuple[str, str, str]]]:
    """name -> [(version, state, error_code)] from GET /v1/config."""
    return {name: [(v["version"], v["state"], v["status"]["error_code"])
                   for v in body["model_version_status"]]
            for name, body in config_status(server).items()}


def text_input(text: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode()], dtype=np.object_))
    return tensor


class Stream:
    """One ModelStreamInfer call through tritonclient, its responses collected."""

    def __init__(self, server: Server, model: str, text: str) -> None:
        self.model = model
        self.client = grpcclient.InferenceServerClient(server.grpc_url)
        self.items: queue.Queue[tuple[str, str]] = queue.Queue()
        self.received: list[tuple[str, str]] = []
        self.errors: list[Any] = []
        self.closing = False
        self.client.start_stream(callback=self._callback)
        self.client.async_stream_infer(model_name=model, inputs=[text_input(text)])

    def _callback(self, result: Any, error: Any) -> None:
        if error is not None:
            if not self.closing:  # a cancel of our own is not the server's failure
                self.errors.append(error)
            return
        for output in result.get_response().outputs:
            data = result.as_numpy(output.name)
            value = data[0].decode() if data is not None and data.size else ""
            self.items.put((output.name, value))

    def collect(self) -> list[tuple[str, str]]:
        while not self.items.empty():
            self.received.append(self.items.get_nowait())
        return self.received

    def words(self) -> list[str]:
        return [v for n, v in self.collect() if n in ("word", "tick")]

    def ended(self) -> bool:
        return any(n == "end_signal" for n, _ in self.collect())

    def close(self, cancel: bool = False) -> None:
        self.closing = cancel
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def infer_words(server: Server, model: str, text: str) -> list[str]:
    """A whole stream on ``model``: its words."""
    stream = Stream(server, model, text)
    try:
        wait_for(stream.ended, f"the end of a stream on {model}")
        assert not stream.errors, stream.errors
        return stream.words()
    finally:
        stream.close()


def echo(server: Server, model: str) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v2/models/{model}/infer", timeout=30, json={
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_graphs(tmp_path)
    return tmp_path


@pytest.mark.parametrize("trigger", ["poll", "reload endpoint"])
def test_reload_under_load(root: Path, trigger: str) -> None:
    config = write_config(root, ["echo", "gated", "endless", "gone"])
    poll = "1" if trigger == "poll" else "0"
    server = start_server(config, "--file_system_poll_wait_seconds", poll)
    streams: list[Stream] = []
    try:
        assert states(server) == {name: [("1", "AVAILABLE", "OK")]
                                  for name in ("echo", "endless", "gated", "gone")}
        streams = ([Stream(server, "gated", TEXT) for _ in range(4)]
                   + [Stream(server, "gone", "x") for _ in range(2)]
                   + [Stream(server, "endless", "x") for _ in range(2)])
        wait_for(lambda: all(s.words() for s in streams), "a first response on all 8 streams")

        # changed: gated's handler; removed: gone; added: fresh (LOADING until its file 'go')
        write_handler(root / "gated", GATED_V2)
        write_config(root, ["echo", "gated", "endless", "fresh"])
        if trigger == "reload endpoint":
            (root / "fresh" / "go").write_text("")  # the reload answers once all is loaded
            reply = httpx.post(server.rest_url + "/v1/config/reload", timeout=60)
            assert reply.status_code == 201, reply.text  # OVMS: 201 when it reloaded
            assert reply.json() == config_status(server)
        else:
            wait_for(lambda: states(server).get("fresh") == [("1", "LOADING", "OK")],
                     "fresh LOADING")
            assert httpx.get(server.rest_url + "/v2/health/ready").status_code == 503
            assert echo(server, "fresh").status_code == 503  # loading: not available yet
            (root / "fresh" / "go").write_text("")
        wait_for(lambda: states(server).get("fresh") == [("1", "AVAILABLE", "OK")],
                 "fresh AVAILABLE")
        wait_for(lambda: infer_words(server, "gated", "new words") == ["NEW", "WORDS"],
                 "the changed handler answering new streams")
        now = states(server)
        assert now["gone"] == [("1", "UNLOADING", "OK")]  # its 2 streams are in flight
        assert now["gated"] == now["echo"] == now["endless"] == [("1", "AVAILABLE", "OK")]
        reply = echo(server, "gone")
        assert reply.status_code == 404, reply.text  # removed: no new requests
        assert echo(server, "fresh").json()["outputs"][0]["data"] == ["HI"]
        assert httpx.get(server.rest_url + "/v2/health/ready").status_code == 200

        # the old streams go on where they started
        ticks = {id(s): len(s.words()) for s in streams[4:]}
        wait_for(lambda: all(len(s.words()) > ticks[id(s)] + 3 for s in streams[4:]),
                 "ticks on the removed and the unchanged endless streams")
        (root / "gated" / "release").write_text("")
        wait_for(lambda: all(s.ended() for s in streams[:4]), "the end of the gated streams")
        for stream in streams[:4]:
            assert stream.words() == TEXT.split()  # the old handler's words, all of them
        for stream in streams[4:]:
            stream.close(cancel=True)
        wait_for(lambda: states(server)["gone"] == [("1", "END", "OK")], "gone END")
        assert all(not s.errors for s in streams), [s.errors for s in streams]
        assert (root / "gone" / "closed").read_text() == "generator closed"

        if trigger == "reload endpoint":  # OVMS: 200 and the document when nothing changed
            reply = httpx.post(server.rest_url + "/v1/config/reload", timeout=60)
            assert reply.status_code == 200, reply.text
            assert reply.json() == config_status(server)
    finally:
        for stream in streams:
            if not stream.closing:
                stream.close(cancel=True)
        assert server.terminate() == 0
    assert "Traceback" not in server.log, server.log


def test_a_broken_config_leaves_the_servables_serving(root: Path) -> None:
    config = write_config(root, ["echo", "endless"])
    server = start_server(config, "--file_system_poll_wait_seconds", "0")
    try:
        before = config_status(server)
        reload_url = server.rest_url + "/v1/config/reload"

        config.write_text('{"mediapipe_config_list": [{"name": "echo"},')  # not JSON
        reply = httpx.post(reload_url, timeout=60)
        assert reply.status_code == 412, reply.text  # OVMS's JSON_INVALID
        assert reply.json()["error"] == ("Reloading config file failed. Check server logs for "
                                         "more info.")
        assert config_status(server) == before
        assert echo(server, "echo").json()["outputs"][0]["data"] == ["HI"]

        config.unlink()
        reply = httpx.post(reload_url, timeout=60)
        assert reply.status_code == 500, reply.text
        assert reply.json()["error"] == "Config file not found or cannot open."
        assert echo(server, "echo").status_code == 200

        # a changed graph that fails validation: the loaded one goes on serving
        good = (root / "echo" / "graph.pbtxt").read_text()
        (root / "echo" / "graph.pbtxt").write_text(good.replace("OUT:upper", "OUT:nowhere"))
        # an added graph that fails validation: LOADING with FAILED_PRECONDITION, as OVMS
        shutil.copytree(root / "echo", root / "bad")
        write_config(root, ["echo", "endless", "bad"])
        reply = httpx.post(reload_url, timeout=60)
        assert reply.status_code == 500, reply.text
        assert reply.json()["error"] == ("Reloading config file failed. Check server logs for "
                                         "more info.")
        # beside OVMS's message: the servables that did not load, with the log's error ids
        assert [e.split()[1] for e in reply.json()["servables"]] == ["echo", "bad"]
        assert states(server) == {"echo": [("1", "AVAILABLE", "OK")],
                                  "endless": [("1", "AVAILABLE", "OK")],
                                  "bad": [("1", "LOADING", "FAILED_PRECONDITION")]}
        assert echo(server, "echo").json()["outputs"][0]["data"] == ["HI"]
        assert echo(server, "bad").status_code == 503

        # fixed: the next reload loads both
        (root / "echo" / "graph.pbtxt").write_text(good)
        (root / "bad" / "graph.pbtxt").write_text(good)
        reply = httpx.post(reload_url, timeout=60)
        assert reply.status_code == 201, reply.text
        assert states(server)["bad"] == [("1", "AVAILABLE", "OK")]
        assert echo(server, "bad").json()["outputs"][0]["data"] == ["HI"]
        # OVMS: a changed config.json is a reload (201) even when no servable changes
        config.write_text(config.read_text() + "\n")
        assert httpx.post(reload_url, timeout=60).status_code == 201
        assert httpx.post(reload_url, timeout=60).status_code == 200
    finally:
        assert server.terminate() == 0
    assert "invalid JSON" in server.log  # the reason is in the log
    assert "its new configuration does not load, the loaded one goes on serving" in server.log
    assert "graph.pbtxt) is invalid" in server.log


def test_a_broken_config_on_the_poll_is_logged_once(root: Path) -> None:
    config = write_config(root, ["echo"])
    server = start_server(config, "--file_system_poll_wait_seconds", "1")
    try:
        config.write_text("{not json")
        # meanwhile the graph files stay watched: changed handlers are picked up, each by a
        # later round of the poll than the last (so several rounds saw the broken config)
        for mark in ("!", "?"):
            write_handler(root / "echo", ECHO.replace("s.upper()", f"s.upper() + '{mark}'"))
            answer = ["HI" + mark]
            wait_for(lambda: echo(server, "echo").json()["outputs"][0]["data"] == answer,  # noqa: B023
                     "the changed handler")
        write_config(root, ["echo", "endless"])
        wait_for(lambda: "endless" in states(server), "the fixed config")
    finally:
        assert server.terminate() == 0
    assert server.log.count("does not load, nothing of it is applied") == 1, server.log


def save_version(base: Path, version: int) -> None:
    """Version folder ``version`` of a model computing x + version, moved in whole (as a
    careful deployment does: the poll never sees a half-written folder)."""
    staging = base.parent / f".staging-{version}"
    save(unary("x", "y", [2], float(version)), staging)
    os.replace(staging, base / str(version))


def plus(server: Server, version: str | None = None) -> httpx.Response:
    where = f"/versions/{version}" if version else ""
    return httpx.post(f"{server.rest_url}/v2/models/plus{where}/infer", timeout=30, json={
        "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]})


def test_a_new_version_folder_is_served(root: Path) -> None:
    base = root / "models" / "plus"
    base.mkdir(parents=True)
    save_version(base, 1)
    config = write_config(root, ["echo"], [{"name": "plus", "base_path": "models/plus"}])
    server = start_server(config, "--file_system_poll_wait_seconds", "1")
    try:
        assert states(server)["plus"] == [("1", "AVAILABLE", "OK")]
        assert plus(server).json()["outputs"][0]["data"] == [2.0, 3.0]
        save_version(base, 2)  # the default policy serves the latest version only
        wait_for(lambda: states(server)["plus"] == [("1", "END", "OK"),
                                                    ("2", "AVAILABLE", "OK")],
                 "version 2 AVAILABLE and version 1 END")
        assert plus(server).json()["outputs"][0]["data"] == [3.0, 4.0]
        assert plus(server, "1").status_code == 404
        # the policy changed in config.json: both versions
        write_config(root, ["echo"], [{"name": "plus", "base_path": "models/plus",
                                       "model_version_policy": {"all": {}}}])
        wait_for(lambda: states(server)["plus"] == [("1", "AVAILABLE", "OK"),
                                                    ("2", "AVAILABLE", "OK")],
                 "both versions AVAILABLE")
        assert plus(server, "1").json()["outputs"][0]["data"] == [2.0, 3.0]
        assert plus(server, "2").json()["outputs"][0]["data"] == [3.0, 4.0]
        # removed: END for each version
        write_config(root, ["echo"])
        wait_for(lambda: states(server)["plus"] == [("1", "END", "OK"), ("2", "END", "OK")],
                 "plus END")
        assert plus(server).status_code == 404
    finally:
        assert server.terminate() == 0
