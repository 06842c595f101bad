"""Transport-neutral LLM generation requests and their streamed chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ovserve.protocol.chat import ChatSettings, ToolCallDelta

Kind = Literal["completion", "chat"]
#: structured output kinds (``SamplingParams.structured``)
StructuredKind = Literal["json_schema", "regex", "structural_tags_config"]

#: Graph stream tags of LLM graphs (OVMS's names): requests in, chunks out.
REQUEST_TAG = "HTTP_REQUEST_PAYLOAD"
RESPONSE_TAG = "HTTP_RESPONSE_PAYLOAD"


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling. ``None`` leaves the model's generation_config default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    apply_chat_template: bool = True
    ignore_eos: bool = False  # generate on past end-of-sequence (vLLM's ignore_eos)
    min_tokens: int = 0  # end-of-sequence and stop strings do not count before this many
    #: structured output: ("json_schema", schema text), ("regex", pattern) or
    #: ("structural_tags_config", structural tag JSON: constrained tool calls)
    structured: tuple[StructuredKind, str] | None = None
    logprobs: bool = False  # return each sampled token's log probability
    min_p: float | None = None  # drop tokens under min_p x the top token's probability
    stop_token_ids: tuple[int, ...] = ()  # these tokens end the generation too
    include_stop_str_in_output: bool = False  # keep the stop string that ended the text
    #: prompt lookup decoding (an engine with plugin_config {"prompt_lookup": true}, as in
    #: OVMS): tokens proposed after an n-gram match, and the longest n-gram looked for
    num_assistant_tokens: int | None = None
    max_ngram_size: int | None = None
    #: speculative decoding with a draft model (OVMS): draft tokens are proposed while the
    #: draft's confidence stays above this
    assistant_confidence_threshold: float | None = None
    #: False: the text keeps the special tokens the model writes (a chat output parser whose
    #: markers are special tokens reads them; the stop token that ends it is left out)
    skip_special_tokens: bool = True


@dataclass(frozen=True)
class GenerationRequest:
    """What an OpenAI completion / chat request asks an LLM node for."""

    kind: Kind
    prompt: str | None = None  # completion
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat
    params: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    adapter: str | None = None  # a LoRA adapter of the graph's model; None: the base model
    #: what a retriever put into the prompt (source, position, score, text), sent back with
    #: the answer
    sources: tuple[dict[str, Any], ...] = ()
    #: chat: tools, tool choice and template settings for the chat layer
    chat: ChatSettings = field(default_factory=ChatSettings)


@dataclass(frozen=True)
class GenerationChunk:
    """New text of one choice; the last chunk of a choice has ``finish_reason`` and usage."""

    index: int
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sources: tuple[dict[str, Any], ...] = ()  # on a choice's first chunk: the request's
    #: with SamplingParams.logprobs: (token text, log probability) of this chunk's tokens
    logprobs: tuple[tuple[str, float], ...] = ()
    #: chat: reasoning text and tool call pieces the chat layer parsed out of the output
    #: (``text`` is then the answer's content only); finish_reason "tool_calls" after calls
    reasoning: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
