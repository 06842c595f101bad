"""LoRA adapters through a real server on the real model, with the clients NIM and vLLM users
have: the openai SDK, curl-like HTTP, tritonclient. Adapter folders are PEFT format with random
matrices (tests/engine/lora_files.py); lengths are forced, so no verdict hangs on the text."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.conftest import REPO
from tests.engine.lora_files import write_adapter
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
ADAPTERS = ("alpha", "beta", "gamma")
FORCED = {"ignore_eos": True}


@pytest.fixture(scope="module")
def lora_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loras")
    for seed, name in enumerate(ADAPTERS):
        write_adapter(root / name, seed=seed)
    return root


@pytest.fixture(scope="module")
def server(default_model_dir: Path, lora_root: Path) -> Iterator[Server]:
    server = start_server(REPO / "servables/config.json", "--lora_dir", str(lora_root),
                          "--max_loras", "3", env={"OVSERVE_IGNORE_EOS": "1",
                                                   "OVSERVE_MAX_TOKENS": "6"})
    yield server
    assert server.terminate() == 0


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.rest_url}/v1", api_key="unused") as client:
        yield client


def metric(server: Server, name: str, labels: str) -> float:
    text = httpx.get(f"{server.rest_url}/metrics").text
    match = re.search(rf"^{name}{{{re.escape(labels)}}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_models_lists_adapters_with_parent_and_root(server: Server, lora_root: Path) -> None:
    data = httpx.get(f"{server.rest_url}/v1/models").json()["data"]
    cards = {card["id"]: card for card in data}
    assert list(cards)[:1] == [MODEL] and set(ADAPTERS) <= set(cards)
    assert cards[MODEL]["parent"] is None
    for name in ADAPTERS:
        assert cards[name]["parent"] == MODEL and cards[name]["root"] == str(lora_root / name)
    one = httpx.get(f"{server.rest_url}/v1/models/beta").json()
    assert one["id"] == "beta" and one["parent"] == MODEL


def test_every_openai_endpoint_takes_an_adapter_id(client: openai.OpenAI, server: Server
                                                   ) -> None:
    before = metric(server, "ovserve_generated_tokens_total", 'model="beta"')
    completion = client.completions.create(model="alpha", prompt="The theory of relativity",
                                           max_tokens=7, extra_body=FORCED)
    assert completion.model == "alpha" and completion.usage is not None
    assert completion.usage.completion_tokens == 7  # forced: the text may be anything
    chat = client.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": "What is relativity?"}],
        max_tokens=5, extra_body=FORCED)
    assert chat.model == "beta" and chat.usage is not None
    assert chat.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(
        model="gamma", messages=[{"role": "user", "content": "Hello"}], max_tokens=6,
        stream=True, stream_options={"include_usage": True}, extra_body=FORCED))
    assert {c.model for c in chunks} == {"gamma"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert metric(server, "ovserve_generated_tokens_total", 'model="beta"') == before + 5
    assert metric(server, "ovserve_requests_total",
                  'interface="openai",servable="alpha"') >= 1


def test_unknown_adapter_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.completions.create(model="no-such-adapter", prompt="hi", max_tokens=2)
    assert error.value.code == "model_not_found"
    assert "no-such-adapter" in str(error.value)


def test_kserve_rest_and_grpc_take_an_adapter_id(server: Server) -> None:
    prompt = np.array([b"What is the theory of relativity?"], dtype=np.object_)
    rest = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    assert rest.is_model_ready("alpha")
    inputs = [httpclient.InferInput("pre_prompt", [1], "BYTES")]
    inputs[0].set_data_from_numpy(prompt)
    result = rest.infer("alpha", inputs)
    assert result.get_response()["model_name"] == "alpha"
    assert result.as_numpy("token_count").tolist() == [6]  # OVSERVE_MAX_TOKENS, forced
    assert result.as_numpy("completion") is not None
    rest.close()

    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    assert grpc.is_model_ready("beta")
    responses: list[object] = []
    done = threading.Event()

    def callback(result: object, error: object) -> None:
        responses.append(error or result)
        if error is not None or result.as_numpy("end_signal") is not None:  # type: ignore[attr-defined]
            done.set()

    grpc.start_stream(callback=callback)
    stream_inputs = [grpcclient.InferInput("pre_prompt", [1], "BYTES")]
    stream_inputs[0].set_data_from_numpy(prompt)
    grpc.async_stream_infer("beta", stream_inputs)
    assert done.wait(60)
    grpc.stop_stream()
    grpc.close()
    assert not any(isinstance(r, Exception) for r in responses)
    counts = [r.as_numpy("token_count") for r in responses  # type: ignore[attr-defined]
              if r.as_numpy("token_count") is not None]  # type: ignore[attr-defined]
    assert [c.tolist() for c in counts] == [[6]]


def post(server: Server, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v1/{path}", json=body, timeout=60)


def test_load_and_unload_endpoints_like_vllm(server: Server, client: openai.OpenAI,
                                             tmp_path: Path) -> None:
    path = write_adapter(tmp_path / "fresh", seed=11)
    loaded = post(server, "load_lora_adapter", {"lora_name": "fresh", "lora_path": str(path)})
    assert loaded.status_code == 200, loaded.text
    assert "fresh" in {m.id for m in client.models.list()}
    assert client.completions.create(model="fresh", prompt="Hi", max_tokens=3,
                                     extra_body=FORCED).usage.completion_tokens == 3  # type: ignore[union-attr]
    again = post(server, "load_lora_adapter", {"lora_name": "fresh", "lora_path": str(path)})
    assert again.status_code == 400 and "already loaded" in again.json()["error"]["message"]
    assert post(server, "unload_lora_adapter", {"lora_name": "fresh"}).status_code == 200
    gone = post(server, "unload_lora_adapter", {"lora_name": "fresh"})
    assert gone.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="fresh", prompt="Hi", max_tokens=2)
    missing = post(server, "load_lora_adapter", {"lora_name": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "lora_path"


@pytest.mark.parametrize(("damage", "message"), [
    ("other_base", "another model"), ("corrupt", "safetensors"), ("rank", "max_lora_rank"),
    ("no_folder", "no adapter folder")])
def test_bad_adapters_are_a_clear_400_and_the_server_keeps_serving(
        server: Server, client: openai.OpenAI, tmp_path: Path, damage: str, message: str
) -> None:
    path = write_adapter(tmp_path / "bad", seed=5, rank=128 if damage == "rank" else 8,
                         in_features=700 if damage == "other_base" else None)
    if damage == "corrupt":
        (path / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    elif damage == "no_folder":
        shutil.rmtree(path)
    response = post(server, "load_lora_adapter", {"lora_name": "bad", "lora_path": str(path)})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error["message"] and "Traceback" not in response.text
    assert client.completions.create(model="alpha", prompt="Hi", max_tokens=2,
                                     extra_body=FORCED).usage.completion_tokens == 2  # type: ignore[union-attr]


def test_load_use_unload_and_rescan_while_eight_streams_run(
        server: Server, client: openai.OpenAI, lora_root: Path, tmp_path: Path) -> None:
    results: list[object] = [None] * 8
    models = [MODEL, *ADAPTERS, MODEL, *ADAPTERS]
    started = threading.Semaphore(0)  # released once per stream: its first chunk (or error)

    def run(index: int) -> None:
        first = True
        try:
            usage = None
            stream = client.completions.create(
                model=models[index], prompt=f"Story {index}:", max_tokens=120, stream=True,
                stream_options={"include_usage": True}, extra_body=FORCED)
            for chunk in stream:
                if first:
                    first = False
                    started.release()
                usage = chunk.usage or usage
            results[index] = usage.completion_tokens if usage else None
        except Exception as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            if first:
                started.release()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    for _ in threads:  # every stream generating before the adapters change
        assert started.acquire(timeout=max(deadline - time.monotonic(), 0)), results
    extra = write_adapter(tmp_path / "live", seed=21)
    assert post(server, "load_lora_adapter", {"lora_name": "live",
                                              "lora_path": str(extra)}).status_code == 200
    assert client.completions.create(model="live", prompt="Hi", max_tokens=4,
                                     extra_body=FORCED).usage.completion_tokens == 4  # type: ignore[union-attr]
    write_adapter(lora_root / "dropped-in", seed=22)  # a new folder: found on first use
    assert client.completions.create(model="dropped-in", prompt="Hi", max_tokens=4,
                                     extra_body=FORCED).usage.completion_tokens == 4  # type: ignore[union-attr]
    assert post(server, "unload_lora_adapter", {"lora_name": "gamma"}).status_code == 200
    deadline = time.monotonic() + 300  # two engine restarts (new slot sets) on a busy box
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    assert results == [120] * 8  # every stream finished, gamma's too, nothing failed
    deadline = time.monotonic() + 30
    while metric(server, "ovserve_engine_requests_active", f'model="{MODEL}"') and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(server, "ovserve_engine_requests_active", f'model="{MODEL}"') == 0
    assert post(server, "load_lora_adapter", {"lora_name": "gamma", "lora_path": str(
        lora_root / "gamma")}).status_code == 200  # back for the other tests


def test_structured_output_beside_adapters(client: openai.OpenAI) -> None:
    """The grammar masks within each request's slot of the widened vocabulary: the base model
    and every adapter, in one server, write the text a regex fixes."""
    for model in (MODEL, *ADAPTERS):
        reply = client.completions.create(model=model, prompt="Say it:", max_tokens=20,
                                          extra_body={"guided_regex": "abc;def"})
        assert reply.choices[0].text == "abc;def" and reply.choices[0].finish_reason == "stop"
