"""Server lifecycle: graceful SIGTERM, disconnecting clients, start-up errors."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tritonclient.grpc as grpcclient

from tests.conftest import REPO, plugin_config
from tests.transport.server import Server, start_server, write_config
from tests.transport.test_grpc import text_input


def test_sigterm_during_a_stream_lets_it_finish(tmp_path: Path) -> None:
    server = start_server(write_config(tmp_path, word_delay=0.2), "--grace_period", "20")
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer("words", [text_input("text", ["one two three four five"])])
        first, error = responses.get(timeout=30)
        assert error is None and first.as_numpy("word").tolist() == [b"one"]
        server.sigterm()  # while four more words are being generated
        words = [b"one"]
        while True:
            result, error = responses.get(timeout=30)
            assert error is None, error
            if result.as_numpy("end_signal") is not None:
                break
            words += result.as_numpy("word").tolist()
        client.stop_stream()
        assert words == [b"one", b"two", b"three", b"four", b"five"]
        assert server.terminate() == 0
        assert "shutting down" in server.log
    finally:
        if server.process.poll() is None:  # a failed assertion must not leak the server
            server.process.kill()
            server.process.communicate()


def test_client_leaving_mid_stream_closes_the_generator(server: Server, tmp_path: Path) -> None:
    marker = server.config.parent / "endless" / "closed"
    client = grpcclient.InferenceServerClient(server.grpc_url)
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    client.async_stream_infer("endless", [text_input("text", ["go"])])
    for _ in range(3):
        result, error = responses.get(timeout=30)
        assert error is None and result.as_numpy("tick") is not None
    client.stop_stream(cancel_requests=True)  # the client goes away mid-generation
    client.close()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "generator closed"


def run_ovserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ovserve", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_port_in_use_is_one_clear_line(server: Server, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for flag, port, name in (("--port", server.grpc_port, "gRPC"),
                             ("--rest_port", server.rest_port, "REST")):
        args = ["--config_path", str(config), "--host", "127.0.0.1", "--port", "0",
                "--rest_port", "0", flag, str(port)]
        result = run_ovserve(*args)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            line for line in result.stderr.strip().splitlines() if line.startswith("ovserve:")]
        assert f"cannot listen on {name} port {port}" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "invalid JSON"), ('{"mediapipe_config_list": [{"base_path": "x"}]}',
                            "'name' is required")],
)
def test_broken_config_exits_1(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    result = run_ovserve("--config_path", str(config), "--port", "0")
    assert result.returncode == 1
    assert message in result.stderr


def test_device_choice_reaches_every_engine(default_model_dir: Path) -> None:
    """--device replaces every graph's device: on a device this machine lacks, each model
    says so (naming the devices present) and the rest of the server keeps serving; per-device
    --plugin_config reaches the engines on that device."""
    import httpx
    import openai

    missing = start_server(REPO / "servables/config.json", "--device", "NPU",
                           all_ready=False)
    ids = []
    try:
        for model in ("smollm2-135m-instruct", "all-minilm-l6-v2", "python_model"):
            reply = httpx.get(f"{missing.rest_url}/v2/models/{model}/ready")
            assert reply.status_code == 503
            error = reply.json()["error"]  # an id to find the reason in the log, no paths
            assert "is not available (error id " in error and "/" not in error
            ids.append(error.split("error id ")[1].split(":")[0])
        assert httpx.get(f"{missing.rest_url}/v2/health/live").status_code == 200
    finally:
        assert missing.terminate() == 0
    log = missing.output()
    for ident in ids:
        line = next(line for line in log.splitlines() if f"(error id {ident})" in line)
        assert "device 'NPU' is not present: NPU is missing; available: " in line
    config = REPO / "graphs/llm/config.json"
    # the flag replaces $OVSERVE_PLUGIN_CONFIG: it carries the variable's CPU properties too
    tuned = start_server(config, "--device", "CPU", "--plugin_config", json.dumps(
        {"CPU": plugin_config({"INFERENCE_NUM_THREADS": 1})}))
    try:
        with openai.OpenAI(base_url=f"{tuned.rest_url}/v1", api_key="unused") as client:
            answer = client.completions.create(model="smollm2-135m-instruct", prompt="Hi",
                                               max_tokens=2, extra_body={"ignore_eos": True})
        assert answer.usage is not None and answer.usage.completion_tokens == 2
    finally:
        assert tuned.terminate() == 0
    assert "'INFERENCE_NUM_THREADS': 1" in tuned.output()


def test_streams_past_the_grace_period_end_with_an_error_event(
        default_model_dir: Path, tmp_path: Path) -> None:
    """SIGTERM with a stream that outlasts --grace_period: before the grace runs out the
    stream gets an error event and [DONE] (not a cut connection), its KV cache is freed, and
    the server exits 0 without tracebacks. The stream is 8000 forced tokens (the model's
    context, over the graph's usual limit): ending within the 2.7 s before the cut-off would
    take over 2900 tokens a second, far more than any CPU gives one stream."""
    import httpx

    graph = (REPO / "graphs/llm/graph.pbtxt").read_text()
    graph = graph.replace('"../../models/smollm2-135m-instruct"', f'"{default_model_dir}"')
    graph = graph.replace("max_tokens_limit: 4096", "max_tokens_limit: 8000")
    assert str(default_model_dir) in graph and "max_tokens_limit: 8000" in graph
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "graph.pbtxt").write_text(graph)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "smollm2-135m-instruct", "base_path": "llm"}]}))
    server = start_server(config, "--grace_period", "3")
    try:
        body = {"model": "smollm2-135m-instruct", "prompt": "Once upon a time",
                "max_tokens": 8000, "ignore_eos": True, "stream": True}
        events: list[str] = []
        with httpx.stream("POST", f"{server.rest_url}/v1/completions", json=body,
                          timeout=60) as reply:
            for line in reply.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(line[len("data: "):])
                if len(events) == 1:
                    server.sigterm()
        assert events[-1] == "[DONE]"
        assert "error" in json.loads(events[-2]), (
            f"the stream ended by itself ({len(events) - 2} events) within the grace period")
        error = json.loads(events[-2])["error"]
        assert error["type"] == "service_unavailable" and "shutting down" in error["message"]
        assert server.terminate() == 0
        assert "Traceback" not in server.log and "CancelledError" not in server.log
        assert "leak" not in server.log.lower()  # OpenVINO reports KV blocks never freed
        assert "ended 1 request(s) still generating" in server.log
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()
