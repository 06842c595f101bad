"""Chat messages and tools through a chat template into the prompt text.

The template: a request's own (when the server trusts requests' templates), else the
engine's (the server's ``--chat_template``, else the model folder's ``chat_template.jinja`` as
in OVMS, else the tokenizer's). A request with tools on a ChatML model whose template does
not render tools (SmolLM2's) gets ``templates/chatml_tools.jinja``, Hermes-style, so the model
can call them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from ovserve.chat.detect import Detected, detect
from ovserve.errors import InvalidInput
from ovserve.protocol.chat import ChatSettings

TEMPLATES = Path(__file__).parent / "templates"


class Renderer(Protocol):
    """What rendering needs of an engine: its chat template and its template engine."""

    @property
    def chat_template(self) -> str: ...

    def render_chat(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                    chat_template: str, tools: list[dict[str, Any]] | None,
                    extra_context: dict[str, Any]) -> str: ...


@cache
def builtin(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text()


@dataclass(frozen=True)
class Rendered:
    prompt: str
    template: str  # the template used
    detected: Detected  # the parsers it implies

    @property
    def opens_reasoning(self) -> bool:
        """The prompt ends inside ``<think>`` (the template opened it for the model)."""
        return self.prompt.rstrip().endswith("<think>")


def template_for(model_template: str, settings: ChatSettings, needs_tools: bool) -> str:
    source = settings.chat_template or model_template
    if needs_tools and not detect(source).renders_tools and "<|im_start|>" in source:
        return builtin("chatml_tools")
    return source


def normalize(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as templates read them: content text, not None; a call's arguments as an
    object when they are a JSON object's text (most templates write them with ``tojson``)."""
    out = []
    for message in messages:
        message = dict(message)
        message["content"] = message.get("content") or ""
        calls = message.get("tool_calls")
        if calls:
            fixed = []
            for call in calls:
                call = dict(call)
                function = dict(call.get("function") or {})
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    try:
                        parsed = json.loads(arguments) if arguments.strip() else {}
                    except ValueError:
                        parsed = arguments
                    function["arguments"] = parsed if isinstance(parsed, dict) else arguments
                call["function"] = function
                fixed.append(call)
            message["tool_calls"] = fixed
        out.append(message)
    return out


def render(renderer: Renderer, messages: Sequence[dict[str, Any]], settings: ChatSettings
           ) -> Rendered:
    """The prompt for ``messages`` (vLLM's rules for ``add_generation_prompt`` and
    ``continue_final_message``)."""
    needs_tools = settings.calls_tools or any(
        m.get("tool_calls") or m.get("role") == "tool" for m in messages)
    template = template_for(renderer.chat_template, settings, needs_tools)
    tools = [t.as_dict() for t in settings.tools] if settings.calls_tools else None
    history = normalize(messages)
    add_prompt = settings.add_generation_prompt
    if settings.continue_final_message:
        if add_prompt:
            raise InvalidInput("continue_final_message: cannot be used with "
                               "add_generation_prompt true; set it false",
                               "continue_final_message")
        if not history or history[-1].get("role") != "assistant":
            raise InvalidInput("continue_final_message: the last message must be the "
                               "assistant's, to continue", "continue_final_message")
    if not template:  # a model without a template: the messages' text, one per line
        prompt = "\n".join(str(m["content"]) for m in history)
        return Rendered(prompt, "", Detected())
    try:
        prompt = renderer.render_chat(history, add_generation_prompt=add_prompt,
                                      chat_template=template, tools=tools,
                                      extra_context=dict(settings.template_kwargs))
    except InvalidInput:
        raise
    except Exception as exc:  # the template's own error: the request does not fit it
        raise InvalidInput(f"messages: the chat template could not render them: {exc}",
                           "messages") from exc
    if settings.continue_final_message:
        final = str(history[-1]["content"])
        at = prompt.rfind(final) if final else -1
        if final and at < 0:
            raise InvalidInput("continue_final_message: the chat template changed the last "
                               "message, it cannot be continued", "continue_final_message")
        if final:
            prompt = prompt[:at + len(final)]
    return Rendered(prompt, template, detect(template))
