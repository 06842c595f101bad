"""The OpenAI-compatible API with the official SDK, raw HTTP and the NIM seed's requests.post,
on the real model behind a real server."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import requests
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import REPO
from tests.toolchain.coherence import assert_coherent
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the theory of relativity?"


@pytest.fixture(scope="module")
def llm_server(default_model_dir: object) -> Iterator[Server]:
    server = start_server(REPO / "servables/config.json")
    yield server
    assert server.terminate() == 0


@pytest.fixture
def client(llm_server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{llm_server.rest_url}/v1", api_key="unused") as client:
        yield client


def engine_metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.rest_url}/metrics").text
    match = re.search(rf'^{name}{{model="{MODEL}"}} (\S+)$', text, re.M)
    assert match, name
    return float(match.group(1))


def test_models_list_holds_exactly_the_served_model_ids(client: openai.OpenAI) -> None:
    # the LLM graphs (the model itself and the RAG graph on it), then the embedding model and
    # the reranker (vLLM lists its pooling models too)
    assert [m.id for m in client.models.list()] == [MODEL, "rag", "all-minilm-l6-v2",
                                                    "minilm-l6-reranker"]
    model = client.models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "ovserve")


def test_chat_non_streamed(client: openai.OpenAI) -> None:
    """A chat answer has the chat shape and counts; forced to 80-120 tokens, sampled with a
    seed (a greedy 135M path can loop), it reads as language."""
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=120,
        temperature=0.7, seed=1,
        extra_body={"min_tokens": 80})  # long enough to judge, however the model answers
    assert reply.model == MODEL and reply.object == "chat.completion"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert_coherent(choice.message.content or "")
    usage = reply.usage
    assert usage is not None and 80 <= usage.completion_tokens <= 120
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def spell(tokens: list[str], text: str) -> bool:
    """Whether a reply's logprob tokens, each decoded alone, spell its text (a token holding
    part of a multi-byte character decodes alone to U+FFFD: it stands for any characters)."""
    pieces = re.split("(\ufffd+)", "".join(tokens))
    pattern = "".join(".+?" if piece.startswith("\ufffd") else re.escape(piece)
                      for piece in pieces)
    return re.fullmatch(pattern, text, re.S) is not None


def chat_once(client: openai.OpenAI, messages: list[ChatCompletionMessageParam],
              **fields: Any) -> tuple[str, str | None, list[str], int]:
    """A non-streamed chat with logprobs: its text, finish reason, tokens and usage."""
    reply = client.chat.completions.create(model=MODEL, messages=messages, logprobs=True,
                                           **fields)
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert reply.usage is not None
    return (choice.message.content or "", choice.finish_reason,
            [entry.token for entry in choice.logprobs.content], reply.usage.completion_tokens)


def chat_streamed(client: openai.OpenAI, messages: list[ChatCompletionMessageParam],
                  **fields: Any) -> tuple[str, str | None, list[str], int]:
    """The same for a streamed chat, checking its framing: the role on the first chunk, a
    finish reason on the last content chunk only, then one chunk of usage."""
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=messages, logprobs=True, stream=True,
        stream_options={"include_usage": True}, **fields))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = chunks[:-1]
    assert all(len(c.choices) == 1 for c in content)
    assert all(c.choices[0].finish_reason is None for c in content[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in content)
    tokens = [entry.token for c in content
              for entry in (c.choices[0].logprobs.content or [] if c.choices[0].logprobs
                            else [])]
    return text, content[-1].choices[0].finish_reason, tokens, chunks[-1].usage.completion_tokens


def test_streamed_chat_matches_non_streamed_and_reports_usage(client: openai.OpenAI) -> None:
    """Each reply adds up to itself: forced to 30 tokens, it ends with "length", its usage
    and its logprobs count 30 tokens, and those tokens spell its text (a stream: its deltas).
    Streamed and non-streamed replies agree where the text is fixed, by a guided_regex
    literal. Two generations are never compared token for token: batching, the prefix cache
    and the CPU's kernels change near-tied tokens between them."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Name three planets."}]
    forced = {"max_tokens": 30, "extra_body": {"ignore_eos": True}}
    for reply in (chat_streamed(client, messages, **forced), chat_once(client, messages, **forced)):
        text, reason, tokens, completion_tokens = reply
        assert (reason, completion_tokens, len(tokens)) == ("length", 30, 30)
        assert spell(tokens, text), (tokens, text)
    literal = "Mercury, Venus and Mars"
    fixed = {"max_tokens": 40, "extra_body": {"guided_regex": literal}}  # no regex syntax in it
    streamed = chat_streamed(client, messages, **fixed)
    full = chat_once(client, messages, **fixed)
    assert streamed[:2] == full[:2] == (literal, "stop")
    for text, _, tokens, completion_tokens in (streamed, full):
        # the grammar may pick another tokenization each time: each counts its own tokens
        assert completion_tokens == len(tokens) and spell(tokens, text)


def test_completions_and_parameters(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is",
                                      max_tokens=8, temperature=0.7, top_p=0.9, seed=7,
                                      presence_penalty=0.5, frequency_penalty=0.5, n=2,
                                      stop=["\n\n"], extra_body={"top_k": 20,
                                                                 "repetition_penalty": 1.1})
    assert reply.object == "text_completion" and len(reply.choices) == 2
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in reply.choices)
    assert reply.usage is not None and reply.usage.completion_tokens <= 16
    # a sampled choice among ten words is one of them; that a seed repeats is deterministic
    # mode's promise, not the default's (tests/transport/test_deterministic.py)
    words = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "grey",
             "orange"]
    chosen = client.completions.create(
        model=MODEL, prompt="My favourite colour is", max_tokens=8, temperature=0.7, seed=7,
        extra_body={"guided_choice": words})
    assert chosen.choices[0].text in words and chosen.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_ignore_eos_and_min_tokens_force_the_length(client: openai.OpenAI,
                                                    temperature: float) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi."}]
    forced = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=40,
                                            temperature=temperature, seed=3,
                                            extra_body={"ignore_eos": True})
    assert forced.usage is not None and forced.usage.completion_tokens == 40
    assert forced.choices[0].finish_reason == "length"
    at_least = client.completions.create(model=MODEL, prompt="Hi", max_tokens=40,
                                         temperature=temperature, seed=4,
                                         extra_body={"min_tokens": 30})
    assert at_least.usage is not None and 30 <= at_least.usage.completion_tokens <= 40


def test_v3_and_max_completion_tokens(llm_server: Server) -> None:
    v3 = openai.OpenAI(base_url=f"{llm_server.rest_url}/v3", api_key="unused")
    reply = v3.chat.completions.create(model=MODEL, max_completion_tokens=5,
                                       messages=[{"role": "user", "content": "Count to ten."}],
                                       extra_body={"ignore_eos": True})
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"


def test_sixteen_concurrent_async_streams(llm_server: Server) -> None:
    async def run() -> list[int | None]:
        client = openai.AsyncOpenAI(base_url=f"{llm_server.rest_url}/v1", api_key="unused")

        async def one(i: int) -> int | None:
            stream = await client.chat.completions.create(
                model=MODEL, max_tokens=24, stream=True, extra_body={"ignore_eos": True},
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"Tell me fact {i} about the sea."}])
            usage = [c.usage async for c in stream if c.usage is not None]
            return usage[-1].completion_tokens if usage else None

        try:
            return await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            await client.close()

    assert asyncio.run(run()) == [24] * 16  # every stream ran to its forced end


def test_async_non_streamed(llm_server: Server) -> None:
    async def run() -> openai.types.Completion:
        async with openai.AsyncOpenAI(base_url=f"{llm_server.rest_url}/v1",
                                      api_key="unused") as client:
            return await client.completions.create(model=MODEL, prompt="One, two,",
                                                   max_tokens=6, extra_body={"ignore_eos": True})

    reply = asyncio.run(run())
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    assert reply.choices[0].finish_reason == "length" and isinstance(reply.choices[0].text, str)


def test_exact_sse_framing(llm_server: Server) -> None:
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "stream": True,
            "ignore_eos": True}
    with httpx.stream("POST", f"{llm_server.rest_url}/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        raw = reply.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all(p["object"] == "text_completion" and p["model"] == MODEL for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"


def test_nim_style_requests_post(llm_server: Server) -> None:
    reply = requests.post(f"{llm_server.rest_url}/v1/completions",
                          json={"model": MODEL, "prompt": QUESTION, "max_tokens": 32},
                          timeout=120)
    assert reply.status_code == 200
    body = reply.json()
    assert isinstance(body["choices"][0]["text"], str)
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] >= 1
    story = requests.post(f"{llm_server.rest_url}/v1/completions",
                          json={"model": MODEL, "prompt": "Once upon a time", "max_tokens": 16,
                                "ignore_eos": True}, timeout=120).json()
    assert story["usage"]["completion_tokens"] == 16
    assert isinstance(story["choices"][0]["text"], str)


ERROR_CASES = [
    ({"model": "nope", "prompt": "x"}, 404, "model", "model_not_found", "`nope` does not exist"),
    ({"model": "python_model", "prompt": "x"}, 404, "model", "model_not_found",
     "not an LLM graph"),
    ({"model": MODEL, "prompt": "x", "temperature": 3}, 400, "temperature", None,
     "temperature: Input should be less than or equal to 2"),
    ({"model": MODEL, "prompt": "x", "max_tokens": 0}, 400, "max_tokens", None, "max_tokens"),
    ({"model": MODEL}, 400, "prompt", None, "prompt: Field required"),
    ({"model": MODEL, "prompt": "x", "logprobs": 2}, 400, "logprobs", None,
     "alternatives are not"),
    ({"model": MODEL, "prompt": "x", "min_tokens": -1}, 400, "min_tokens", None, "min_tokens"),
    ({"model": MODEL, "prompt": "x", "seed": -1}, 400, "seed", None, "seed: "),
    ({"model": MODEL, "prompt": "x", "seed": 2**70}, 400, "seed", None, "seed: "),
    ({"model": MODEL, "prompt": "x", "echo": 0}, 400, "echo", None, "echo: "),
    ({"model": MODEL, "prompt": "x", "max_tokens": 5, "min_tokens": 6}, 400, None, None,
     "min_tokens 6 is over max_tokens 5"),
    ({"model": MODEL, "prompt": "x", "max_tokens": 5000}, 400, None, None,
     "max_tokens 5000 is over this model's limit of 4096"),
    ({"model": MODEL, "prompt": "word " * 8000, "max_tokens": 1000}, 400, None, None,
     "tokens and max_tokens is 1000: together over the model's context of 8192 tokens"),
    ({"model": MODEL, "prompt": "x", "num_assistant_tokens": 2}, 400, "num_assistant_tokens",
     None, "only for a model served with prompt lookup decoding"),
    ({"model": MODEL, "prompt": "x", "max_ngram_size": 0}, 400, "max_ngram_size", None,
     "max_ngram_size: Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize(("body", "status", "param", "code", "message"), ERROR_CASES,
                         ids=[str(i) for i in range(len(ERROR_CASES))])
def test_errors_use_the_openai_envelope(
    llm_server: Server, body: dict[str, object], status: int, param: str | None,
    code: str | None, message: str,
) -> None:
    for stream in (False, True):
        reply = httpx.post(f"{llm_server.rest_url}/v1/completions",
                           json={**body, "stream": stream}, timeout=120)
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert message in error["message"]
        assert (error["param"], error["code"]) == (param, code)


def test_chat_validation_names_the_field(llm_server: Server) -> None:
    reply = httpx.post(f"{llm_server.rest_url}/v1/chat/completions",
                       json={"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "messages.0.role"
    malformed = httpx.post(f"{llm_server.rest_url}/v1/chat/completions", content=b"{nope")
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["error"]["message"]


def test_unknown_fields_are_accepted(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Hi", max_tokens=3,
                                      extra_body={"nvext": {"guided": None}, "foo": 1})
    assert reply.choices[0].finish_reason in ("stop", "length")


def wait_for_abort(server: Server, aborted: float) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (engine_metric(server, "ovserve_engine_requests_aborted_total") > aborted
                and engine_metric(server, "ovserve_engine_requests_active") == 0):
            return
        time.sleep(0.05)
    pytest.fail("the engine did not abort the request of the client that left")


def test_stream_disconnect_aborts_generation(llm_server: Server) -> None:
    aborted = engine_metric(llm_server, "ovserve_engine_requests_aborted_total")
    body = {"model": MODEL, "prompt": "Write a long story.", "max_tokens": 2000,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{llm_server.rest_url}/v1/completions", json=body) as reply:
        next(reply.iter_lines())  # one event, then the client goes away
    wait_for_abort(llm_server, aborted)


def test_non_streamed_disconnect_aborts_generation(llm_server: Server) -> None:
    aborted = engine_metric(llm_server, "ovserve_engine_requests_aborted_total")
    body = json.dumps({"model": MODEL, "prompt": "Write a long story.", "max_tokens": 2000,
                       "ignore_eos": True}).encode()
    with socket.create_connection(("127.0.0.1", llm_server.rest_port)) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        deadline = time.monotonic() + 10
        while engine_metric(llm_server, "ovserve_engine_requests_active") == 0:
            assert time.monotonic() < deadline, "the request never reached the engine"
            time.sleep(0.02)
    wait_for_abort(llm_server, aborted)


def test_vllm_and_nim_probes(llm_server: Server) -> None:
    # guidellm checks /health before a run; NIM's probes are under /v1/health
    for probe in ("/health", "/ping", "/v1/health/ready", "/v1/health/live"):
        assert httpx.get(f"{llm_server.rest_url}{probe}").status_code == 200
    version = httpx.get(f"{llm_server.rest_url}/version").json()["version"]
    assert isinstance(version, str) and version


def test_a_list_of_prompts_gives_n_choices_each(client: openai.OpenAI) -> None:
    prompts = ["The Moon is", "Honey bees are", "Glaciers form when"]
    forced = {"ignore_eos": True}
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=5, extra_body=forced)
             for p in prompts]
    batch = client.completions.create(model=MODEL, prompt=prompts, n=2, max_tokens=5,
                                      extra_body=forced)
    assert sorted(c.index for c in batch.choices) == list(range(6))
    assert all(c.finish_reason == "length" for c in batch.choices)
    assert batch.usage is not None and batch.usage.completion_tokens == 30
    assert batch.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone if a.usage)
    streamed = list(client.completions.create(
        model=MODEL, prompt=prompts[:2], max_tokens=4, stream=True, extra_body=forced,
        stream_options={"include_usage": True}))
    ended = {c.choices[0].index for c in streamed if c.choices and c.choices[0].finish_reason}
    assert ended == {0, 1}
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens == 8


@pytest.mark.parametrize(("fields", "param"), [
    ({"suffix": " and so on"}, "suffix"), ({"best_of": 3}, "best_of"),
    ({"prompt": []}, "prompt")])
def test_fields_that_would_change_the_output_are_named_400s(
        llm_server: Server, fields: dict[str, object], param: str) -> None:
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 3, **fields}
    response = httpx.post(f"{llm_server.rest_url}/v1/completions", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "adult"],
          "properties": {"name": {"type": "string", "maxLength": 20},
                         "adult": {"type": "boolean"}}}


def json_prefix(text: str) -> bool:
    """Whether ``text`` is the start of a JSON value: closing its open string (without a
    half-written escape) and its open brackets, after a value, a key, half a literal or
    nothing, parses."""
    closers: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]" and (not closers or closers.pop() != char):
            return False
    if in_string:
        text = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", text) + '"'
    literals = [word[i:] for word in ("true", "false", "null") for i in range(1, len(word))]
    for middle in ("", "null", ":null", '"k":null', *literals):
        try:
            json.loads(text + middle + "".join(reversed(closers)))
            return True
        except json.JSONDecodeError:
            pass
    return False


def test_structured_output_follows_the_json_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, max_tokens=200, temperature=0,  # far more than the bounded schema needs
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": PERSON}})
    text = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "length":
        # the schema bounds every value, but the grammar lets whitespace between tokens run
        # on: a greedy path that takes it spends the budget there, still inside the grammar
        assert json_prefix(text) and text.lstrip().startswith("{"), text
    else:
        assert reply.choices[0].finish_reason == "stop"  # the grammar ends it with the JSON
        person = json.loads(text)
        assert set(person) == {"name", "adult"} and isinstance(person["adult"], bool)
        assert isinstance(person["name"], str) and len(person["name"]) <= 20
    anything = client.completions.create(
        model=MODEL, prompt="A JSON object:", max_tokens=60, temperature=0,
        extra_body={"response_format": {"type": "json_object"}})
    text = anything.choices[0].text
    if anything.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut at max_tokens: still the start of an object
        assert text.lstrip().startswith("{")


def test_vllm_structured_output_fields(client: openai.OpenAI) -> None:
    """guided_choice / guided_regex / structured_outputs: the grammar decides the text's form,
    whatever the model would say; the grammar's end ends the generation."""
    choice = client.completions.create(model=MODEL, prompt="Is water wet?", max_tokens=20,
                                       extra_body={"guided_choice": ["yes", "no", "maybe"]})
    assert choice.choices[0].text in ("yes", "no", "maybe")
    assert choice.choices[0].finish_reason == "stop"
    digits = client.chat.completions.create(
        model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "A number?"}],
        extra_body={"guided_regex": "[0-9]{3}"})
    assert re.fullmatch("[0-9]{3}", digits.choices[0].message.content or "")
    newer = client.completions.create(model=MODEL, prompt="Pick:", max_tokens=20,
                                      extra_body={"structured_outputs": {"choice": ["a.b", "c"]}})
    assert newer.choices[0].text in ("a.b", "c")


def test_include_stop_str_in_output(client: openai.OpenAI) -> None:
    """A regex makes the text "abc;def"; the stop string ";" ends it, kept when asked for."""
    for include, expected in ((False, "abc"), (True, "abc;")):
        reply = client.completions.create(
            model=MODEL, prompt="Say it:", max_tokens=20, stop=[";"],
            extra_body={"guided_regex": "abc;def", "include_stop_str_in_output": include})
        assert (reply.choices[0].text, reply.choices[0].finish_reason) == (expected, "stop")


UNSUPPORTED_FIELDS = [
    ("logit_bias", {"50256": -100}), ("use_beam_search", True), ("skip_special_tokens", False),
    ("prompt_logprobs", 1), ("guided_grammar", "root ::= 'a'"),
    ("chat_template", "{{ messages }}"),
]


@pytest.mark.parametrize(("field", "value"), UNSUPPORTED_FIELDS,
                         ids=[f for f, _ in UNSUPPORTED_FIELDS])
def test_fields_that_would_change_the_answer_are_never_ignored(
    llm_server: Server, field: str, value: object,
) -> None:
    response = httpx.post(f"{llm_server.rest_url}/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "x"}], field: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}: ")


def test_two_structured_output_constraints_are_a_named_400(llm_server: Server) -> None:
    response = httpx.post(f"{llm_server.rest_url}/v1/completions", json={
        "model": MODEL, "prompt": "x", "guided_regex": "a", "guided_choice": ["b"]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] in ("guided_choice", "guided_regex")
    bad = httpx.post(f"{llm_server.rest_url}/v1/completions", json={
        "model": MODEL, "prompt": "x", "min_p": 1.5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "min_p"


def test_response_format_without_a_schema_is_a_named_400(llm_server: Server) -> None:
    response = httpx.post(f"{llm_server.rest_url}/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"


def test_logprobs_of_the_sampled_tokens(client: openai.OpenAI) -> None:
    forced = {"ignore_eos": True}
    chat = client.chat.completions.create(
        model=MODEL, max_tokens=6, logprobs=True, extra_body=forced,
        messages=[{"role": "user", "content": "Name a colour."}])
    content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 6
    assert all(t.logprob <= 0 and t.top_logprobs == [] for t in content)
    streamed = [c for c in client.chat.completions.create(
        model=MODEL, max_tokens=6, logprobs=True, stream=True, extra_body=forced,
        messages=[{"role": "user", "content": "Name a colour."}]) if c.choices]
    tokens = [t for c in streamed if c.choices[0].logprobs and c.choices[0].logprobs.content
              for t in c.choices[0].logprobs.content]
    assert len(tokens) == 6
    completion = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5,
                                           logprobs=0, extra_body=forced)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert len(logprobs.tokens) == 5 and logprobs.token_logprobs is not None
    assert len(logprobs.token_logprobs) == 5 and all(lp <= 0 for lp in logprobs.token_logprobs)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(5)]
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model=MODEL, max_tokens=2, logprobs=True,
                                       top_logprobs=3, messages=[{"role": "user",
                                                                   "content": "x"}])


def test_echo_puts_the_prompt_before_the_completion(client: openai.OpenAI) -> None:
    forced = {"ignore_eos": True}
    prompts = ["The sky is", "Bees are"]
    echoed = client.completions.create(model=MODEL, prompt=prompts, n=2, max_tokens=4,
                                       echo=True, extra_body=forced)
    for choice in echoed.choices:
        prompt = prompts[choice.index // 2]
        assert choice.text.startswith(prompt)
    assert echoed.usage is not None and echoed.usage.completion_tokens == 16
    events = [c for c in client.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=4, echo=True, stream=True,
        extra_body=forced) if c.choices]
    assert events[0].choices[0].text == "The sky is"  # the prompt comes first, on its own
    assert len(events) > 1  # then the completion's own events
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model=MODEL, prompt="x", max_tokens=2, echo=True, logprobs=0)


def test_stream_metrics_count_once_and_time_the_whole_stream(llm_server: Server) -> None:
    """A streamed request: one request, its first output and its end timed separately."""
    def metric(name: str) -> float:
        text = httpx.get(f"{llm_server.rest_url}/metrics").text
        line = f'{name}{{interface="openai",servable="{MODEL}"}} '
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    names = ["ovserve_requests_total", "ovserve_request_duration_seconds_count",
             "ovserve_request_duration_seconds_sum", "ovserve_time_to_first_output_seconds_count",
             "ovserve_time_to_first_output_seconds_sum"]
    before = {n: metric(n) for n in names}
    body = {"model": MODEL, "prompt": "a b c d", "max_tokens": 4, "ignore_eos": True,
            "stream": True}
    with httpx.stream("POST", f"{llm_server.rest_url}/v1/completions", json=body) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]" and len(lines) >= 2
    after = {n: metric(n) - before[n] for n in names}
    assert after["ovserve_requests_total"] == 1
    assert after["ovserve_request_duration_seconds_count"] == 1
    assert after["ovserve_time_to_first_output_seconds_count"] == 1
    assert after["ovserve_request_duration_seconds_sum"] >= (
        after["ovserve_time_to_first_output_seconds_sum"])


def test_openapi_describes_the_real_bodies_and_errors(llm_server: Server) -> None:
    spec = httpx.get(f"{llm_server.rest_url}/openapi.json").json()
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"):
        post = spec["paths"][path]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert {"200", "400", "404", "500"} <= set(post["responses"])
        assert "422" not in post["responses"]
    schemas = spec["components"]["schemas"]
    assert {"CompletionRequest", "CompletionResponse", "ErrorResponse"} <= set(schemas)


def test_infinity_is_not_a_number_here(llm_server: Server) -> None:
    body = b'{"model": "%s", "prompt": "x", "repetition_penalty": Infinity}' % MODEL.encode()
    reply = httpx.post(f"{llm_server.rest_url}/v1/completions", content=body,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "repetition_penalty"


def test_booleans_are_true_or_false(llm_server: Server) -> None:
    for value in ("yes", 1):
        reply = httpx.post(f"{llm_server.rest_url}/v1/completions",
                           json={"model": MODEL, "prompt": "x", "stream": value})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "stream"

