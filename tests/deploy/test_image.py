"""The serving image, built and run for real: Docker (Debian's docker.io, a daemon started by
deploy/docker/ensure_docker.sh), a Debian 12 base made by debootstrap (no registry is reachable
here; the Dockerfile's default base is the public python:3.11-slim-bookworm), the wheels from the
host. The container answers the seed's clients, tritonclient and the openai SDK, runs as a
non-root user without torch, reports healthy, serves an OVMS-style mounted model folder, and
drains a stream on docker stop (SIGTERM) before exiting 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.conftest import REPO
from tests.transport.server import free_port

IMAGE = "ovserve:test"
BASE = "ovserve-base:bookworm"
MODEL = "smollm2-135m-instruct"


def sh(*args: str, timeout: float = 1200) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{' '.join(args)}:\n{output}"
    return result.stdout


@pytest.fixture(scope="module")
def image(default_model_dir: Path, embedding_model_dir: Path) -> str:
    sh("bash", str(REPO / "deploy/docker/ensure_docker.sh"))
    sh("bash", str(REPO / "deploy/docker/debian_base.sh"), BASE)
    sh("bash", str(REPO / "deploy/docker/build_image.sh"), "--base", BASE, "--tag", IMAGE)
    return IMAGE


# What the suite's runs vary (kernels, default sampling) reaches the container's server too
PASSED_ENV = ("OVSERVE_PLUGIN_CONFIG", "OVSERVE_OVERRIDE_GENERATION_CONFIG")


def passed_env() -> list[str]:
    """``docker run`` options giving the container those of PASSED_ENV the host has set."""
    return [part for name in PASSED_ENV if os.environ.get(name)
            for part in ("-e", f"{name}={os.environ[name]}")]


class Container:
    def __init__(self, image: str, *args: str, volumes: tuple[str, ...] = ()) -> None:
        self.name = f"ovserve-test-{uuid.uuid4().hex[:8]}"
        self.grpc_port, self.rest_port = free_port(), free_port()
        mounts = [part for v in volumes for part in ("-v", v)]
        sh("docker", "run", "-d", "--network", "host", "--name", self.name,
           "-e", f"OVSERVE_REST_PORT={self.rest_port}", *passed_env(), *mounts, image, *args,
           "--port", str(self.grpc_port), "--rest_port", str(self.rest_port))
        self.url = f"http://127.0.0.1:{self.rest_port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            state = json.loads(sh("docker", "inspect", "-f", "{{json .State}}", self.name))
            assert state["Running"], self.logs()
            time.sleep(0.5)
        raise AssertionError(f"the container did not become ready:\n{self.logs()}")

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return result.stdout + result.stderr

    def stop(self) -> int:
        sh("docker", "stop", "-t", "35", self.name)
        code = int(sh("docker", "inspect", "-f", "{{.State.ExitCode}}", self.name).strip())
        return code

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


@pytest.fixture(scope="module")
def served(image: str) -> Iterator[Container]:
    container = Container(image)  # the image's default: servables/config.json, all of it
    yield container
    container.remove()


def test_seed_clients_tritonclient_and_openai_sdk(served: Container) -> None:
    grpc_url = f"127.0.0.1:{served.grpc_port}"
    for script in ("client_unary.py", "client_stream.py"):
        out = sh(sys.executable, str(REPO / "clients" / script), "--url", grpc_url, timeout=300)
        assert "Total time" in out or "Number of responses" in out, out
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused") as client:
        assert MODEL in {m.id for m in client.models.list()}
        reply = client.chat.completions.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"ignore_eos": True})
        assert reply.usage is not None and reply.usage.completion_tokens == 8
        vectors = client.embeddings.create(model="all-minilm-l6-v2", input=["a", "b"])
        assert [len(v.embedding) for v in vectors.data] == [384, 384]


def test_non_root_without_torch_and_healthy(served: Container) -> None:
    assert sh("docker", "exec", served.name, "id", "-u").strip() == "1000"
    probe = "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('transformers'))"
    assert sh("docker", "exec", served.name, "python3.11", "-c", probe).strip() == "None None"
    deadline = time.monotonic() + 60
    while (status := sh("docker", "inspect", "-f", "{{.State.Health.Status}}",
                        served.name).strip()) != "healthy":
        assert status == "starting" and time.monotonic() < deadline, status
        time.sleep(1)


def test_ovms_demo_docker_run_line(image: str, default_model_dir: Path) -> None:
    """OVMS's LLM demo starts its server as `docker run -d --rm -p 9000:9000 -v
    ${PWD}/servable_unary:/workspace -v ${PWD}/${SELECTED_MODEL}:/model -e
    SELECTED_MODEL=${SELECTED_MODEL} openvino/model_server:py --config_path
    /workspace/config.json --port 9000`: the same line with ovserve's image (only the host side
    of -p is a free port), the seed's unary client answered by the model at /model."""
    host_port = free_port()
    name = f"ovserve-test-{uuid.uuid4().hex[:8]}"
    sh("docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{host_port}:9000",
       "-v", f"{REPO / 'servables/servable_unary'}:/workspace",
       "-v", f"{default_model_dir}:/model", "-e", f"SELECTED_MODEL={MODEL}", *passed_env(),
       image, "--config_path", "/workspace/config.json", "--port", "9000")
    try:
        with grpcclient.InferenceServerClient(f"127.0.0.1:{host_port}") as client:
            deadline = time.monotonic() + 180
            while not _ready(client):
                state = json.loads(sh("docker", "inspect", "-f", "{{json .State}}", name))
                assert state["Running"] and time.monotonic() < deadline, state
                time.sleep(0.5)
        out = sh(sys.executable, str(REPO / "clients/client_unary.py"), "--url",
                 f"127.0.0.1:{host_port}", timeout=300)
        assert "Total time" in out, out
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        assert "/workspace/graph.pbtxt" in logs.stdout + logs.stderr
        assert "/model" in logs.stdout + logs.stderr  # the engine loaded the mounted model
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def _ready(client: grpcclient.InferenceServerClient) -> bool:
    try:
        return bool(client.is_server_ready())
    except InferenceServerException:
        return False


def test_ovms_style_mounted_model_folder_and_sigterm_drain(image: str,
                                                           default_model_dir: Path) -> None:
    """OVMS's `docker run -v $PWD/model:/model ... --model_path /model --model_name NAME`; a
    stream in flight when docker stop comes finishes whole, then the container exits 0."""
    container = Container(image, "--model_path", "/model", "--model_name", "mounted",
                          volumes=(f"{default_model_dir}:/model:ro",))
    try:
        got: dict[str, object] = {}
        started = threading.Event()

        def stream() -> None:
            with openai.OpenAI(base_url=f"{container.url}/v1", api_key="unused") as client:
                chunks = client.completions.create(
                    model="mounted", prompt="Once upon a time", max_tokens=200, stream=True,
                    stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
                for chunk in chunks:
                    started.set()
                    if chunk.usage is not None:
                        got["tokens"] = chunk.usage.completion_tokens

        thread = threading.Thread(target=stream)
        thread.start()
        assert started.wait(60)
        assert container.stop() == 0
        thread.join(60)
        assert got.get("tokens") == 200, container.logs()
    finally:
        container.remove()
