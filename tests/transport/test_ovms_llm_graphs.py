"""Graphs as OVMS 2026.3's export_model.py writes them (tests/fixtures/ovms_2026_3, made by its
regenerate.sh), laid out as the script lays out its model repository, served by a real ovserve
on loopback with the real model: each loads and answers chat completions on /v3.

- default: ``cache_size: 0`` (a dynamic KV cache) and ``LLM_NODE_EXECUTION_CONTEXTS``;
- draft_parsers: speculative decoding (``draft_models_path``) with tool and reasoning parsers,
  which are kept and reported as not acted on;
- parsers_eviction: the parsers with OVMS's documented ``cache_eviction_config`` (with a draft
  model it is a load error: openvino-genai 2026.4.1 fails every step of that combination).

The draft model is SmolLM2-135M itself (the only model here): speculative decoding then accepts
every draft token, which is still the whole draft/verify path. Verdicts never depend on the
text: lengths are forced (ignore_eos) and counted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.transport.server import Server, start_server

FIXTURES = REPO / "tests" / "fixtures" / "ovms_2026_3"
HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DRAFT_DIR = "HuggingFaceTB-SmolLM2-135M-Instruct"  # export_model.py's flattened draft name
GRAPHS = ("default", "draft_parsers", "parsers_eviction")
TOKENS = 24


def _model_folder(folder: Path, model: Path, graph: Path) -> None:
    """export_model.py's layout: the model's files, its graph.pbtxt and the draft model in a
    sub-folder (the model's files linked, not copied: each folder is its own engine)."""
    folder.mkdir(parents=True)
    for item in model.iterdir():
        if item.name != "graph.pbtxt":
            (folder / item.name).symlink_to(item)
    (folder / DRAFT_DIR).mkdir()
    for item in model.iterdir():
        (folder / DRAFT_DIR / item.name).symlink_to(item)
    shutil.copy(graph, folder / "graph.pbtxt")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ovms_models")
    # the default graph with the config.json export_model.py wrote next to it, unchanged
    exported = json.loads((FIXTURES / "default" / "config.json").read_text())
    assert exported["model_config_list"][0]["config"] == {"name": HF_NAME, "base_path": HF_NAME}
    entries = exported["model_config_list"]
    _model_folder(root / HF_NAME, default_model_dir, FIXTURES / "default" / "graph.pbtxt")
    for name in GRAPHS[1:]:
        _model_folder(root / name, default_model_dir, FIXTURES / name / "graph.pbtxt")
        entries.append({"config": {"name": name, "base_path": name}})
    config = root / "config.json"
    config.write_text(json.dumps(exported))
    server = start_server(config)
    yield server
    assert server.terminate() == 0
    check_load_log(server.log, root)


def check_load_log(log: str, root: Path) -> None:
    """The log says what each graph loaded from where."""
    assert log.count("a dynamic KV cache") == 3, log
    assert f"speculative decoding with draft model {root / 'draft_parsers' / DRAFT_DIR} on " \
        "CPU" in log
    assert "cache eviction (start 32, recent 128, max 672 tokens)" in log
    # the graphs' tool_parser / reasoning_parser act (the chat layer): nothing is reported
    assert "not acted on" not in log


def chat(server: Server, model: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v3/chat/completions", timeout=120, json={
        "model": model, "max_tokens": TOKENS, "ignore_eos": True, "temperature": 0,
        "messages": [{"role": "user", "content": "Explain the theory of relativity to a "
                      "student, with one example from everyday life."}],
        **extra})


@pytest.mark.parametrize("model", [HF_NAME, *GRAPHS[1:]])
def test_each_exported_graph_serves_chat_completions(server: Server, model: str) -> None:
    reply = chat(server, model)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == model
    assert body["usage"]["completion_tokens"] == TOKENS
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["prompt_tokens"] > 40  # past the eviction fault's window (below)


def test_streamed_speculative_decoding_counts_every_token(server: Server) -> None:
    """A draft model proposes several tokens per step: the stream still carries each one
    (the usage chunk counts them) and ends once."""
    with httpx.stream("POST", f"{server.rest_url}/v3/chat/completions", timeout=120, json={
            "model": "draft_parsers", "max_tokens": TOKENS, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True},
            "num_assistant_tokens": 3,
            "messages": [{"role": "user", "content": "Write about the sea."}]}) as reply:
        assert reply.status_code == 200
        events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    assert chunks[-1]["usage"]["completion_tokens"] == TOKENS


def test_assistant_fields_reach_a_draft_model_and_are_refused_elsewhere(server: Server
                                                                        ) -> None:
    reply = chat(server, "draft_parsers", assistant_confidence_threshold=0.4)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == TOKENS
    refused = chat(server, HF_NAME, assistant_confidence_threshold=0.4)
    assert refused.status_code == 400
    assert "assistant_confidence_threshold" in refused.json()["error"]["message"]


def test_cache_eviction_serves_past_its_per_sequence_cap(server: Server) -> None:
    """max_cache_size is 672 tokens: a longer prompt plus its answer still completes."""
    prompt = "Repeat after me: " + "the quick brown fox jumps over the lazy dog. " * 80
    reply = httpx.post(f"{server.rest_url}/v3/completions", timeout=120, json={
        "model": "parsers_eviction", "prompt": prompt, "max_tokens": 16,
        "ignore_eos": True, "temperature": 0})
    assert reply.status_code == 200, reply.text
    usage = reply.json()["usage"]
    assert usage["prompt_tokens"] > 672 and usage["completion_tokens"] == 16


def test_a_prompt_in_the_eviction_fault_window_is_refused_alone(server: Server) -> None:
    """openvino-genai 2026.4.1's cache eviction fails the step on prompts of start_size + 1 to
    start_size + snapkv_window_size - 1 tokens (33-39 here), which would fail every request in
    the batch: that prompt is refused with a 400 naming the fields, and the model serves on."""
    refused = httpx.post(f"{server.rest_url}/v3/completions", timeout=120, json={
        "model": "parsers_eviction", "prompt": "word " * 35, "max_tokens": 4})
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "a prompt of 36 tokens" in message and "snapkv_window_size" in message
    assert chat(server, "parsers_eviction").status_code == 200
