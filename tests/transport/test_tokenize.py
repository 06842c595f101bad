"""vLLM's /tokenize and /detokenize, OVMS's /v3/tokenize, on the built-in model: the ids are
the tokenizer's, a chat request's prompt is what generation would see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.transport.chat_server import MODEL, chat_server
from tests.transport.server import Server

CHAT = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    yield from chat_server(tmp_path_factory.mktemp("tokenize"))


def post(server: Server, path: str, **body: object) -> httpx.Response:
    return httpx.post(f"{server.rest_url}{path}", json={"model": MODEL, **body}, timeout=30)


def test_prompt_round_trip(server: Server) -> None:
    got = post(server, "/tokenize", prompt="Hello world, 1234!", return_token_strs=True).json()
    assert got["count"] == len(got["tokens"]) > 2
    assert got["max_model_len"] == 8192
    assert "".join(got["token_strs"]).replace("Ġ", " ") == "Hello world, 1234!"
    back = post(server, "/detokenize", tokens=got["tokens"]).json()
    assert back == {"prompt": "Hello world, 1234!"}


def test_messages_are_the_chat_prompt(server: Server) -> None:
    got = post(server, "/v1/tokenize", messages=CHAT).json()
    text = post(server, "/v1/detokenize", tokens=got["tokens"]).json()["prompt"]
    assert text.endswith("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n")
    without = post(server, "/tokenize", messages=CHAT, add_generation_prompt=False).json()
    assert without["count"] < got["count"]
    # the chat request's usage counts the same prompt
    reply = post(server, "/v1/chat/completions", messages=CHAT, max_tokens=1).json()
    assert reply["usage"]["prompt_tokens"] == got["count"]


def test_ovms_text(server: Server) -> None:
    one = post(server, "/v3/tokenize", text="hello world").json()
    assert set(one) == {"tokens"} and all(isinstance(t, int) for t in one["tokens"])
    many = post(server, "/v3/tokenize", text=["hello world", "a b c d e f"], max_length=3).json()
    assert many["tokens"][0] == one["tokens"][:3] and len(many["tokens"][1]) == 3


@pytest.mark.parametrize(("body", "param"), [
    ({}, "prompt"), ({"prompt": "a", "text": "b"}, "text"),
    ({"prompt": "a", "pad_to_max_length": True}, "pad_to_max_length"),
    ({"messages": CHAT, "continue_final_message": True, "add_generation_prompt": False},
     "continue_final_message"),
])
def test_bad_requests(server: Server, body: dict[str, object], param: str) -> None:
    response = post(server, "/tokenize", **body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_detokenize_unknown_model_is_a_404(server: Server) -> None:
    response = httpx.post(f"{server.rest_url}/detokenize", json={"model": "x", "tokens": [1]})
    assert response.status_code == 404


def prompt_of(server: Server, **body: object) -> str:
    ids = post(server, "/tokenize", **body).json()["tokens"]
    return str(post(server, "/detokenize", tokens=ids).json()["prompt"])


def test_generation_prompt_and_continuing_the_last_message(server: Server) -> None:
    """vLLM's add_generation_prompt false (the prompt ends with the last message) and
    continue_final_message (the assistant's unfinished message is continued, not closed)."""
    assert prompt_of(server, messages=CHAT, add_generation_prompt=False).endswith(
        "Hello there<|im_end|>\n")
    prefill = [*CHAT, {"role": "assistant", "content": "General Kenobi, the"}]
    assert prompt_of(server, messages=prefill, add_generation_prompt=False,
                     continue_final_message=True).endswith(
        "<|im_start|>assistant\nGeneral Kenobi, the")
    reply = post(server, "/v1/chat/completions", messages=prefill, max_tokens=3,
                 add_generation_prompt=False, continue_final_message=True,
                 ignore_eos=True).json()
    assert reply["usage"]["completion_tokens"] == 3
    # the same prompt as /tokenize gave (the continued message is not closed)
    assert reply["usage"]["prompt_tokens"] == post(
        server, "/tokenize", messages=prefill, add_generation_prompt=False,
        continue_final_message=True).json()["count"]
