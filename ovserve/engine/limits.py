"""The one place that decides how long a generation may be and what prompt the model sees.

Precedence, for every front end (OpenAI API, LLM node, Python handlers):

1. the request's ``max_tokens`` (over the graph's ``max_tokens_limit`` or the context left: 400);
2. the graph's default (``GenerationLimits.default_max_tokens``: a handler's setting);
3. the model's ``generation_config.json`` ``max_new_tokens``;
4. the context the prompt leaves, at most the graph's ``max_tokens_limit``.

``min_tokens`` may not exceed the resulting ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ovserve.errors import InvalidInput
from ovserve.protocol.generation import SamplingParams

#: A completion prompt, or chat messages (``[{"role", "content"}, ...]``).
Prompt = str | Sequence[dict[str, Any]]


@dataclass(frozen=True)
class GenerationLimits:
    """What a graph or handler sets about lengths."""

    max_tokens_limit: int | None = None  # a request may not ask for more
    default_max_tokens: int | None = None  # used when the request does not say


def render_prompt(prompt: Prompt, params: SamplingParams, chat_template: str,
                  apply_template: Callable[[list[dict[str, Any]]], str]) -> str:
    """The text the model sees: chat messages through the chat template; a plain prompt
    through it too when ``params.apply_chat_template`` (a bare question to the seed
    servables), as is when not (OpenAI completions)."""
    if isinstance(prompt, str):
        if params.apply_chat_template and chat_template:
            return apply_template([{"role": "user", "content": prompt}])
        return prompt
    if not chat_template:
        return "\n".join(str(m.get("content", "")) for m in prompt)
    return apply_template(list(prompt))


def max_new_tokens(params: SamplingParams, limits: GenerationLimits, prompt_tokens: int,
                   context_length: int, model_default: int | None) -> int:
    """How many tokens this request may generate (see the module docstring)."""
    if prompt_tokens == 0:  # the engine refuses it; the request is at fault, not the server
        raise InvalidInput("the prompt is empty (it has no tokens); give some text", "prompt")
    room = context_length - prompt_tokens
    if room < 1:
        raise InvalidInput(f"the prompt has {prompt_tokens} tokens, over the model's "
                           f"context of {context_length} tokens")
    limit = limits.max_tokens_limit
    if params.max_tokens is not None:
        if limit is not None and params.max_tokens > limit:
            raise InvalidInput(f"max_tokens {params.max_tokens} is over this model's limit of "
                               f"{limit} (max_tokens_limit)")
        if params.max_tokens > room:
            raise InvalidInput(
                f"the prompt has {prompt_tokens} tokens and max_tokens is {params.max_tokens}: "
                f"together over the model's context of {context_length} tokens")
        chosen = params.max_tokens
    else:
        default = limits.default_max_tokens or model_default
        chosen = min(default, room) if default else room
        if limit is not None:
            chosen = min(chosen, limit)
    if params.min_tokens > chosen:
        raise InvalidInput(f"min_tokens {params.min_tokens} is over max_tokens {chosen}")
    return chosen
