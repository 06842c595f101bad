"""Chat templates from the server and from requests: --chat_template replaces the model's,
--trust_request_chat_template lets a request bring its own (a 400 without it: see
test_chat_tools), and chat_template_kwargs reach the template as variables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.transport.chat_server import MODEL, chat_server
from tests.transport.server import Server

SERVER_TEMPLATE = ("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                   "{% if add_generation_prompt %}[assistant] {% endif %}")
CHAT = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
           ) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("templates")
    (root / "template.jinja").write_text(SERVER_TEMPLATE)
    yield from chat_server(root, "--chat_template", str(root / "template.jinja"),
                           "--trust_request_chat_template")


def prompt_of(server: Server, **body: object) -> str:
    ids = httpx.post(f"{server.rest_url}/tokenize",
                     json={"model": MODEL, **body}).json()["tokens"]
    return str(httpx.post(f"{server.rest_url}/detokenize",
                          json={"model": MODEL, "tokens": ids}).json()["prompt"])


def test_the_servers_template_replaces_the_models(server: Server) -> None:
    assert prompt_of(server, messages=CHAT) == "[user] Hello there\n[assistant] "


def test_a_requests_template_and_its_variables(server: Server) -> None:
    template = "{{ greeting }}, {% for m in messages %}{{ m.content }}{% endfor %}!"
    assert prompt_of(server, messages=CHAT, chat_template=template,
                     chat_template_kwargs={"greeting": "Ahoy"}) == "Ahoy, Hello there!"
    reply = httpx.post(f"{server.rest_url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": CHAT, "chat_template": template, "max_tokens": 2,
        "chat_template_kwargs": {"greeting": "Ahoy"}, "ignore_eos": True}).json()
    assert reply["usage"]["completion_tokens"] == 2
    assert reply["usage"]["prompt_tokens"] == len(httpx.post(
        f"{server.rest_url}/tokenize", json={"model": MODEL, "prompt": "Ahoy, Hello there!",
                                             "add_special_tokens": False}).json()["tokens"])


def test_a_broken_template_is_a_400(server: Server) -> None:
    response = httpx.post(f"{server.rest_url}/v1/chat/completions", json={
        "model": MODEL, "messages": CHAT, "chat_template": "{% for %}", "max_tokens": 2})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
