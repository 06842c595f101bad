"""Pydantic models of the OpenAI API: the requests ovserve accepts and the responses and
stream chunks it sends (serialized with ``exclude_unset``: fields set to None are sent as
null, fields never set are left out).

Unknown request fields are allowed (and logged), as vLLM and OVMS do.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictBool,
    field_validator,
    model_serializer,
    model_validator,
)

from ovserve.transport.openai import legacy_functions


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: StrictBool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's ``response_format``: plain text, any JSON object, or JSON matching a schema."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputs(BaseModel):
    """vLLM's ``structured_outputs``: one of a JSON schema, a regex or a list of choices."""

    model_config = ConfigDict(extra="allow", strict=True)
    json_: dict[str, Any] | str | None = Field(None, alias="json")
    regex: str | None = None
    choice: list[str] | None = Field(None, min_length=1)


class SamplingFields(BaseModel):
    # strict, as OpenAI's API: a number is a JSON number ("0.5" or true is a 400 naming the
    # field), a boolean true/false ("yes" or 0 is a 400); numbers finite (no Infinity/NaN)
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)
    seed: int | None = Field(None, ge=0, le=2**64 - 1)
    stop: str | list[str] | None = None
    repetition_penalty: float | None = Field(None, gt=0)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int = Field(1, ge=1, le=16)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    logprobs: Any = None  # chat: a boolean; completions: how many alternatives (0 only)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None
    response_format: ResponseFormat | None = None
    # vLLM's extra sampling fields (NIM clients, guidellm and vLLM's benchmark send them)
    ignore_eos: StrictBool = False
    min_tokens: int = Field(0, ge=0)
    min_p: float | None = Field(None, ge=0, lt=1)
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: StrictBool = False
    # vLLM's structured output fields (older guided_* and newer structured_outputs)
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = Field(None, min_length=1)
    structured_outputs: StructuredOutputs | None = None
    # OVMS's prompt lookup fields (a model served with plugin_config {"prompt_lookup": true})
    # and speculative decoding's (a model served with a draft model: draft_models_path)
    num_assistant_tokens: int | None = Field(None, ge=1, le=64)
    max_ngram_size: int | None = Field(None, ge=1, le=64)
    assistant_confidence_threshold: float | None = Field(None, gt=0, lt=1)
    # llama.cpp's: the response (a stream's chunks that finish a choice) carries ``timings``
    timings_per_token: StrictBool = False


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: StrictBool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    arguments: str = "{}"  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    """A tool call the assistant made, in a message of the history or of an answer."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's calls
    tool_call_id: str | None = None  # a tool's answer: the call it answers
    reasoning_content: str | None = None  # an assistant's reasoning (templates may use it)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""

    def as_dict(self) -> dict[str, Any]:
        """The message as chat templates take it (content as text)."""
        message: dict[str, Any] = {"role": self.role, "content": self.text()}
        if self.name is not None:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.reasoning_content is not None:
            message["reasoning_content"] = self.reasoning_content
        return message


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(BaseModel):
    """OpenAI's ``{"type": "function", "function": {name, description, parameters}}``."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the function that must be called."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["function"]
    function: FunctionName


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool = True
    # vLLM's chat template fields
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: StrictBool = True
    continue_final_message: StrictBool = False
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    #: the request used the legacy functions fields (answered in their shape)
    _legacy_functions: bool = PrivateAttr(False)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return legacy_functions.upgrade(data)

    @model_validator(mode="after")
    def _mark(self) -> ChatCompletionRequest:
        if self.model_extra and self.model_extra.pop(legacy_functions.MARK, False):
            self._legacy_functions = True
        return self

    @property
    def legacy_functions(self) -> bool:
        return self._legacy_functions


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request (OVMS's /v3/embeddings takes the same)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str
    # token arrays (OpenAI's other forms) are a 400 naming input
    input: str | Annotated[list[str], Field(min_length=1)]

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(v, int | list) for v in value):
            raise ValueError("token arrays are not supported; send text")
        if value == []:
            raise ValueError("give at least one text")
        return value
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class UnloadLoraAdapterRequest(BaseModel):
    """vLLM's ``/v1/unload_lora_adapter``."""

    model_config = ConfigDict(extra="allow", strict=True)
    lora_name: str = Field(min_length=1)
    lora_path: str | None = None  # vLLM's clients send it; unused
    model: str | None = None  # the base model, when several LLMs are served


class LoadLoraAdapterRequest(UnloadLoraAdapterRequest):
    """vLLM's ``/v1/load_lora_adapter``: the adapter's PEFT folder on the server."""

    lora_path: str = Field(min_length=1)


# -- responses --------------------------------------------------------------------------------

class Body(BaseModel):
    """A response body: every field is sent (null included), except the optional extras named
    in ``omit_if_none`` (a chunk's ``usage``, a delta's ``role``), left out when absent."""

    omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.omit_if_none:
            if data.get(key, 0) is None:
                del data[key]
        return data


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ovserve"
    root: str | None = None
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class Answer(Body):
    """What completions and chat answer, whole or as stream chunks (the subclasses narrow
    ``object`` and ``choices``); ``usage`` and ``sources`` are left out when absent."""

    omit_if_none = ("usage", "sources", "timings")
    id: str
    object: str
    created: int
    model: str
    choices: list[Any]
    usage: Usage | None = None
    sources: list[dict[str, Any]] | None = None  # a RAG graph's retrieved chunks
    #: llama.cpp's per-request timings (``timings_per_token``), ``transport.engine_requests``
    timings: dict[str, Any] | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: None = None  # alternatives are not available
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionResponse(Answer):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[Any] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


FinishReason = Literal["stop", "length", "tool_calls", "function_call"]


class AssistantMessage(Body):
    """An answer: its content (null when it only calls tools), its reasoning (vLLM's
    ``reasoning`` and the older ``reasoning_content``, left out without any) and calls."""

    omit_if_none = ("reasoning_content", "reasoning", "tool_calls", "function_call")
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # the legacy functions' answer


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionResponse(Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class FunctionDelta(Body):
    omit_if_none = ("name",)
    name: str | None = None
    arguments: str = ""


class ToolCallDelta(Body):
    """A piece of a streamed call: the first has id, type and name; later ones arguments."""

    omit_if_none = ("id", "type")
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta


class DeltaMessage(Body):
    omit_if_none = ("role", "reasoning_content", "reasoning", "tool_calls", "function_call")
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    function_call: FunctionDelta | None = None  # the legacy functions' pieces


class ChatStreamChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(Answer):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatStreamChoice]


class CompletionChunk(Answer):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str  # floats, or base64 of little-endian float32
    index: int


class EmbeddingsResponse(Body):
    omit_if_none = ("usage", "sources")
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- tokenizer endpoints (vLLM's /tokenize and /detokenize, OVMS's /v3/tokenize) --------------

class TokenizeRequest(BaseModel):
    """vLLM's ``prompt`` or ``messages`` (rendered as a chat request would be), or OVMS's
    ``text`` (a string or a list of them)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    text: str | list[str] | None = None
    add_special_tokens: StrictBool | None = None  # vLLM: true for prompt, false for messages
    add_generation_prompt: StrictBool = True
    continue_final_message: StrictBool = False
    tools: list[ToolDefinition] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_strs: StrictBool = False
    max_length: int | None = Field(None, ge=1)  # OVMS: keep at most this many tokens
    pad_to_max_length: StrictBool = False


class TokenizeResponse(Body):
    """vLLM's answer (``count``, ``max_model_len``, ``tokens``, ``token_strs``); OVMS's
    ``text`` requests get ``tokens`` alone (a list per text for a list)."""

    omit_if_none = ("count", "max_model_len", "token_strs")
    count: int | None = None
    max_model_len: int | None = None
    tokens: list[int] | list[list[int]]
    token_strs: list[str] | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    tokens: list[Annotated[int, Field(ge=0, lt=2**31)]]


class DetokenizeResponse(BaseModel):
    prompt: str
