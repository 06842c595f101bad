"""Generation length precedence: request, graph default, model default, context left."""

from __future__ import annotations

import pytest

from ovserve.engine.limits import GenerationLimits, max_new_tokens, render_prompt
from ovserve.errors import InvalidInput
from ovserve.protocol.generation import SamplingParams

NONE = GenerationLimits()


def decide(params: SamplingParams, limits: GenerationLimits = NONE, prompt: int = 10,
           context: int = 100, model: int | None = None) -> int:
    return max_new_tokens(params, limits, prompt, context, model)


def test_precedence() -> None:
    graph = GenerationLimits(max_tokens_limit=50, default_max_tokens=20)
    assert decide(SamplingParams(max_tokens=7), graph, model=30) == 7  # the request
    assert decide(SamplingParams(), graph, model=30) == 20  # the graph's default
    assert decide(SamplingParams(), GenerationLimits(max_tokens_limit=50), model=30) == 30
    assert decide(SamplingParams(), GenerationLimits(max_tokens_limit=50)) == 50  # capped room
    assert decide(SamplingParams()) == 90  # the context left
    assert decide(SamplingParams(), GenerationLimits(default_max_tokens=200)) == 90


@pytest.mark.parametrize(("params", "limits", "message"), [
    (SamplingParams(max_tokens=60), GenerationLimits(max_tokens_limit=50),
     "max_tokens 60 is over this model's limit of 50"),
    (SamplingParams(max_tokens=95), GenerationLimits(),
     "the prompt has 10 tokens and max_tokens is 95: together over the model's context of 100"),
    (SamplingParams(max_tokens=5, min_tokens=6), GenerationLimits(),
     "min_tokens 6 is over max_tokens 5"),
])
def test_errors_name_the_numbers(params: SamplingParams, limits: GenerationLimits,
                                 message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decide(params, limits)
    with pytest.raises(InvalidInput, match="the prompt has 120 tokens, over the model's context"):
        decide(SamplingParams(), prompt=120)


def test_prompts_and_the_chat_template() -> None:
    def template(messages: list[dict[str, object]]) -> str:
        return "|".join(f"{m['role']}:{m['content']}" for m in messages)

    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert render_prompt(chat, SamplingParams(), "t", template) == "system:be brief|user:hi"
    assert render_prompt("hi", SamplingParams(), "t", template) == "user:hi"
    assert render_prompt("hi", SamplingParams(apply_chat_template=False), "t", template) == "hi"
    assert render_prompt("hi", SamplingParams(), "", template) == "hi"  # a model without one
