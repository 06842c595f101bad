"""OVMS's API key (issue 27, item 2): ``API_KEY`` and ``--api_key_file`` read as OVMS reads
them, beside ovserve's ``--api_key`` / ``OVSERVE_API_KEY``, with one scope rule for all of them
(every request but probes, metrics, GET /v1/config and the web page's files); several keys,
one per line in the file. The openai SDK and tritonclient (HTTP and gRPC) send them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ovserve import cli
from ovserve.app import start
from ovserve.engine import EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.serving.server_config import load_server_config
from tests.transport.fake_server import LLM
from tests.transport.fake_server import write_config as write_llm_config
from tests.transport.server import Server, free_port, start_server, write_config

FILE_KEYS = ("first-key", "second-key")


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}  # gRPC metadata keys are lower-case


def echo(module: object) -> object:
    tensor = module.InferInput("text", [1], "BYTES")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
    return tensor


def kserve_answers(server: Server, key: str | None) -> tuple[bool, bool]:
    """Whether tritonclient's HTTP and gRPC infer calls with ``key`` (or none) are answered."""
    headers = bearer(key) if key else {}
    answered = []
    rest = httpclient.InferenceServerClient(server.rest_url.removeprefix("http://"))
    remote = grpcclient.InferenceServerClient(server.grpc_url)
    for client, module in ((rest, httpclient), (remote, grpcclient)):
        try:
            result = client.infer("echo", [echo(module)], headers=dict(headers))
            assert result.as_numpy("upper").tolist() == [b"HI"]
            answered.append(True)
        except InferenceServerException as exc:
            assert "API key" in str(exc) or "401" in str(exc) or "Unauthorized" in str(exc)
            answered.append(False)
    return answered[0], answered[1]


def openai_answers(server: Server, key: str) -> bool:
    with openai.OpenAI(base_url=f"{server.rest_url}/v3", api_key=key, max_retries=0) as client:
        try:
            client.models.list()
        except openai.AuthenticationError:
            return False
    return True


@pytest.fixture(scope="module")
def from_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(write_config(tmp_path_factory.mktemp("graphs")),
                          env={"API_KEY": "env-key", "OVSERVE_API_KEY": ""})
    yield server
    assert server.terminate() == 0
    assert "env-key" not in server.log  # where the key came from is logged, never the key
    assert "API keys required ($API_KEY)" in server.log


def test_api_key_from_the_environment_guards_v3_and_kserve(from_env: Server) -> None:
    assert openai_answers(from_env, "env-key")
    assert not openai_answers(from_env, "wrong")
    assert kserve_answers(from_env, "env-key") == (True, True)
    assert kserve_answers(from_env, None) == (False, False)
    assert kserve_answers(from_env, "wrong") == (False, False)
    for path in ("/v3/chat/completions", "/v1/chat/completions", "/v3/completions",
                 "/v3/embeddings"):
        reply = httpx.post(from_env.rest_url + path, json={"model": "echo", "prompt": "x"})
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    for path in ("/v2/health/ready", "/v2/health/live", "/metrics", "/v2/models/echo/ready"):
        assert httpx.get(from_env.rest_url + path).status_code == 200, path
    assert httpx.get(from_env.rest_url + "/v1/config").status_code != 401  # OVMS's status


@pytest.fixture(scope="module")
def from_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("graphs")
    keys = root / "keys.txt"
    keys.write_text(f"{FILE_KEYS[0]}  \r\n\n  {FILE_KEYS[1]}\n")  # OVMS strips line ends
    server = start_server(write_config(root), "--api_key_file", str(keys),
                          env={"API_KEY": "env-key", "OVSERVE_API_KEY": ""})
    yield server
    assert server.terminate() == 0
    assert all(key not in server.log for key in FILE_KEYS)
    assert f"API keys required (2 from --api_key_file {keys})" in server.log


def test_every_key_of_the_file_is_accepted_and_it_wins_over_api_key(from_file: Server) -> None:
    for key in FILE_KEYS:
        assert openai_answers(from_file, key)
        assert kserve_answers(from_file, key) == (True, True)
    assert not openai_answers(from_file, "env-key")  # as OVMS: the file, else $API_KEY
    assert kserve_answers(from_file, None) == (False, False)


def test_ovserve_key_and_ovms_key_together(tmp_path: Path) -> None:
    server = start_server(write_config(tmp_path), "--api_key", "own-key",
                          env={"API_KEY": "env-key"})
    try:
        assert openai_answers(server, "own-key") and openai_answers(server, "env-key")
        assert not openai_answers(server, "other")
    finally:
        assert server.terminate() == 0


@pytest.mark.parametrize(("content", "message"), [
    ("\n  \n", "holds no key (one key per line); an empty file would leave the server open"),
    (None, "cannot read the API key file"),
])
def test_an_empty_or_missing_key_file_is_a_usage_error(tmp_path: Path, content: str | None,
                                                        message: str) -> None:
    keys = tmp_path / "keys.txt"
    if content is not None:
        keys.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "ovserve", "--config_path", str(write_config(tmp_path)),
         "--rest_port", str(free_port()), "--api_key_file", str(keys)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"--api_key_file: {message}" in result.stderr.replace(f"{keys}: ", "") or \
        message in result.stderr


def test_openai_chat_on_v3_with_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """A chat completion through /v3 (a fake engine behind the LLM graph): the key from
    $API_KEY as the command line reads it lets it in; no key is 401 in OpenAI's shape."""
    monkeypatch.setenv("API_KEY", "env-key")
    monkeypatch.delenv("OVSERVE_API_KEY", raising=False)
    config = write_llm_config(tmp_path)
    parser = cli.build_parser()
    args = parser.parse_args(["--config_path", str(config), "--rest_port", str(free_port()),
                              "--host", "127.0.0.1"])
    settings = cli.server_settings(parser, args, load_server_config(config))
    assert settings.api_keys == ("env-key",)

    async def chat() -> None:
        running = await start(settings, EngineRegistry(lambda _: FakeEngine(LLM)))
        url = f"http://127.0.0.1:{settings.rest_port}/v3"
        try:
            async with openai.AsyncOpenAI(base_url=url, api_key="env-key") as client:
                answer = await client.chat.completions.create(
                    model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
                assert answer.choices[0].message.content
            async with openai.AsyncOpenAI(base_url=url, api_key="nope", max_retries=0) as client:
                with pytest.raises(openai.AuthenticationError):
                    await client.chat.completions.create(
                        model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        finally:
            await running.stop()

    asyncio.run(chat())
