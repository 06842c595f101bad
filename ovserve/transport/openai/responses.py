"""OpenAI's Responses API (``/v1/responses``; OVMS's ``/v3/responses``) on the same serving
layer as chat completions: a request's ``input`` items and ``instructions`` become chat
messages, its tools (functions; custom and local_shell tools as ``response_tools`` maps
them) and ``tool_choice`` the chat layer's, and the parsed chunks
(content, reasoning, tool calls) become output items, whole or as the event stream the
openai SDK parses (``response.created`` ... ``response.completed``).

Responses are not stored: ``previous_response_id`` is a 400 (as in OVMS), ``store`` is
accepted and answered ``false``.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from ovserve.aio import prepended
from ovserve.errors import InvalidInput, OvserveError
from ovserve.protocol.generation import GenerationChunk
from ovserve.transport.openai import response_tools
from ovserve.transport.openai.protocol import ChatCompletionRequest
from ovserve.transport.openai.serving import Generation, OpenAIServing

#: chat fields the Responses API has its own form of (not taken from its extra fields)
OWN_FIELDS = frozenset({"messages", "max_tokens", "max_completion_tokens", "stream", "tools",
                        "tool_choice", "response_format", "n", "model", "stream_options",
                        "parallel_tool_calls", "reasoning_effort"})
NEUTRAL = {"previous_response_id": None, "background": False, "conversation": None,
           "prompt": None}


class ResponseTextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "response"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseText(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    format: ResponseTextFormat | None = None


class ResponseReasoning(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: str | None = None


class ResponsesRequest(BaseModel):
    """The fields ovserve acts on; others are accepted and logged, as chat's are."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool = True
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: StrictBool = False
    reasoning: ResponseReasoning | None = None
    text: ResponseText | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    previous_response_id: str | None = None


def _text_of(content: Any, where: str) -> str:
    """A message's content: a string, or parts of text (input_text, output_text, text)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidInput(f"{where}: a string or a list of text parts is required", "input")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in (
                "input_text", "output_text", "text", "refusal"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidInput(f"{where}.{j}: {kind!r} parts are not supported (text only)",
                               "input")
        text = part.get("text", part.get("refusal", ""))
        if not isinstance(text, str):
            raise InvalidInput(f"{where}.{j}.text: a string is required", "input")
        texts.append(text)
    return "".join(texts)


def _field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{name}: a string is required", "input")
    return value


def messages_of(req: ResponsesRequest) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages: function_call items join the
    assistant message before them, function_call_output items are tool messages."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        messages.append({"role": "user", "content": req.input})
        return messages
    for i, item in enumerate(req.input):
        where = f"input.{i}"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise InvalidInput(f"{where}.role: one of user, system, developer, assistant",
                                   "input")
            messages.append({"role": role, "content": _text_of(item.get("content"),
                                                               f"{where}.content")})
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            if kind == "function_call":
                name, arguments = _field(item, "name", where), _field(item, "arguments", where)
            else:
                name, arguments = response_tools.call_arguments(item, kind, where)
            call = {"id": _field(item, "call_id", where), "type": "function", "function": {
                "name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant" or last.get("tool_calls") is None:
                last = {"role": "assistant", "content": "", "tool_calls": []}
                messages.append(last)
            last["tool_calls"].append(call)
        elif kind in ("function_call_output", "custom_tool_call_output",
                      "local_shell_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output, f"{where}.output")
            # a local shell call's output names the call by its id
            answers = _field(item, "id" if kind == "local_shell_call_output" else "call_id",
                             where)
            messages.append({"role": "tool", "tool_call_id": answers, "content": text})
        elif kind == "reasoning":
            continue  # earlier reasoning: templates drop it
        else:
            raise InvalidInput(f"{where}.type: {kind!r} items are not supported (message, "
                               "reasoning, function_call, custom_tool_call, local_shell_call "
                               "and their outputs are)", "input")
    if not messages:
        raise InvalidInput("input: give at least one message", "input")
    return messages


def chat_request(req: ResponsesRequest) -> dict[str, Any]:
    """The chat completions request that asks the same."""
    for name, neutral in NEUTRAL.items():
        if (req.model_extra or {}).get(name, neutral) != neutral or (
                name == "previous_response_id" and req.previous_response_id is not None):
            raise InvalidInput(f"{name}: not supported (responses are not stored; send the "
                               "whole conversation in input)", name)
    body: dict[str, Any] = {"model": req.model, "messages": messages_of(req),
                            "stream": req.stream, "parallel_tool_calls": req.parallel_tool_calls}
    # chat's own extra fields (vLLM's sampling and structured output, chat_template_kwargs):
    # taken as chat completions take them
    body.update({k: v for k, v in (req.model_extra or {}).items()
                 if k in ChatCompletionRequest.model_fields and k not in OWN_FIELDS})
    for name in ("temperature", "top_p"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if req.max_output_tokens is not None:
        body["max_completion_tokens"] = req.max_output_tokens
    if req.tools:
        body["tools"] = [response_tools.chat_tool(tool, i)[0] for i, tool in enumerate(req.tools)]
    choice = req.tool_choice
    if isinstance(choice, dict):
        if choice.get("type") == response_tools.LOCAL_SHELL:
            choice = {"type": "function", "name": response_tools.LOCAL_SHELL}
        if choice.get("type") not in ("function", "custom") or not isinstance(
                choice.get("name"), str):
            raise InvalidInput("tool_choice: {\"type\": \"function\" or \"custom\", \"name\": "
                               "...} names a tool; other forms are not supported", "tool_choice")
        choice = {"type": "function", "function": {"name": choice["name"]}}
    if choice is not None:
        body["tool_choice"] = choice
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    fmt = req.text.format if req.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if not fmt.schema_:
            raise InvalidInput("text.format.schema: a JSON schema is required", "text")
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt.name, "schema": fmt.schema_}}
    return body


class _Output:
    """The output items of one response as its chunks arrive, and the stream events that
    build them (an item is added, gets its deltas, is done, before the next one)."""

    def __init__(self, response_id: str, kinds: dict[str, str] | None = None) -> None:
        self.response_id = response_id
        self.kinds = kinds or {}  # tool name -> function | custom | local_shell
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the item getting deltas
        self.calls: dict[int, dict[str, Any]] = {}  # tool call index -> its item
        self.raw: dict[str, str] = {}  # a custom or shell call's arguments so far, by item id

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = self.items.index(item)
        events: list[dict[str, Any]] = []
        if item["type"] == "message":
            part = item["content"][0]
            events += [{"type": "response.output_text.done", "item_id": item["id"],
                        "output_index": index, "content_index": 0, "text": part["text"],
                        "logprobs": []},
                       {"type": "response.content_part.done", "item_id": item["id"],
                        "output_index": index, "content_index": 0, "part": part}]
        elif item["type"] == "reasoning":
            events.append({"type": "response.reasoning_text.done", "item_id": item["id"],
                           "output_index": index, "content_index": 0,
                           "text": item["content"][0]["text"]})
        elif item["type"] == "custom_tool_call":
            item["input"] = response_tools.custom_input(self.raw.pop(item["id"], ""))
            if item["input"]:
                events.append({"type": "response.custom_tool_call_input.delta",
                               "item_id": item["id"], "output_index": index,
                               "delta": item["input"]})
            events.append({"type": "response.custom_tool_call_input.done",
                           "item_id": item["id"], "output_index": index,
                           "input": item["input"]})
        elif item["type"] == "local_shell_call":
            item["action"] = response_tools.shell_action(self.raw.pop(item["id"], ""))
        else:
            events.append({"type": "response.function_call_arguments.done",
                           "item_id": item["id"], "output_index": index, "name": item["name"],
                           "arguments": item["arguments"]})
        item["status"] = status
        events.append({"type": "response.output_item.done", "output_index": index,
                       "item": item})
        return events

    def _open(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.items.append(item)
        self.open = item
        index = len(self.items) - 1
        added = copy.deepcopy(item)
        if item["type"] == "message":
            added["content"] = []
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": added})
        if item["type"] == "message":
            events.append({"type": "response.content_part.added", "item_id": item["id"],
                           "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": [],
                                    "logprobs": []}})
        return events

    def add(self, chunk: GenerationChunk) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if chunk.reasoning:
            if self.open is None or self.open["type"] != "reasoning":
                events += self._open({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}",
                                      "summary": [], "status": "in_progress",
                                      "content": [{"type": "reasoning_text", "text": ""}]})
            assert self.open is not None
            self.open["content"][0]["text"] += chunk.reasoning
            events.append({"type": "response.reasoning_text.delta", "item_id": self.open["id"],
                           "output_index": len(self.items) - 1, "content_index": 0,
                           "delta": chunk.reasoning})
        if chunk.text:
            if self.open is None or self.open["type"] != "message":
                events += self._open({"type": "message", "id": f"msg_{uuid.uuid4().hex}",
                                      "status": "in_progress", "role": "assistant",
                                      "content": [{"type": "output_text", "text": "",
                                                   "annotations": [], "logprobs": []}]})
            assert self.open is not None
            self.open["content"][0]["text"] += chunk.text
            events.append({"type": "response.output_text.delta", "item_id": self.open["id"],
                           "output_index": len(self.items) - 1, "content_index": 0,
                           "delta": chunk.text, "logprobs": []})
        for piece in chunk.tool_calls:
            if piece.name is not None:
                events += self._open(self._call_item(piece.name, piece.id or ""))
                assert self.open is not None
                self.calls[piece.index] = self.open
            item = self.calls.get(piece.index)
            if item is None or not piece.arguments:
                continue
            if item["type"] != "function_call":  # its item is made when it ends
                self.raw[item["id"]] = self.raw.get(item["id"], "") + piece.arguments
                continue
            item["arguments"] += piece.arguments
            events.append({"type": "response.function_call_arguments.delta",
                           "item_id": item["id"], "output_index": self.items.index(item),
                           "delta": piece.arguments})
        return events

    def _call_item(self, name: str, call_id: str) -> dict[str, Any]:
        kind = self.kinds.get(name, "function")
        if kind == "custom":
            return {"type": "custom_tool_call", "id": f"ctc_{uuid.uuid4().hex}",
                    "call_id": call_id, "name": name, "input": "", "status": "in_progress"}
        if kind == response_tools.LOCAL_SHELL:
            return {"type": "local_shell_call", "id": f"lsh_{uuid.uuid4().hex}",
                    "call_id": call_id, "status": "in_progress",
                    "action": {"type": "exec", "command": [], "env": {}}}
        return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex}", "call_id": call_id,
                "name": name, "arguments": "", "status": "in_progress"}

    def finish(self, incomplete: bool = False) -> list[dict[str, Any]]:
        """Close the last item; ``incomplete``: the output was cut there (max_output_tokens),
        so it is an incomplete item (a call's arguments may not be whole JSON)."""
        return self._close("incomplete" if incomplete else "completed")


class ResponsesServing:
    """The Responses API's orchestration, through ``OpenAIServing``'s preparation."""

    def __init__(self, serving: OpenAIServing) -> None:
        self.serving = serving

    def _prepare(self, req: ResponsesRequest) -> Generation:
        try:
            chat = ChatCompletionRequest.model_validate(chat_request(req))
        except ValidationError as exc:  # a field the Responses request carried, in chat's shape
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise InvalidInput(f"{where}: {error['msg']}", str(error["loc"][0])) from exc
        return self.serving.prepare(chat)

    def _response(self, req: ResponsesRequest, response_id: str, created: int, model: str,
                  status: str, items: list[dict[str, Any]], usage: tuple[int, int] | None,
                  incomplete: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": response_id, "object": "response", "created_at": created, "status": status,
            "model": model, "output": items, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "parallel_tool_calls": req.parallel_tool_calls, "temperature": req.temperature,
            "top_p": req.top_p, "tool_choice": req.tool_choice or "auto",
            "tools": req.tools or [], "text": {"format": {"type": "text"}}
            if req.text is None else req.text.model_dump(by_alias=True, exclude_none=True),
            "reasoning": req.reasoning.model_dump() if req.reasoning else None,
            "metadata": req.metadata or {}, "previous_response_id": None, "store": False,
            "truncation": "disabled", "user": req.user, "usage": None}
        if usage is not None:
            prompt, completion = usage
            body["usage"] = {"input_tokens": prompt, "output_tokens": completion,
                             "total_tokens": prompt + completion,
                             "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens_details": {"reasoning_tokens": 0}}
        return body

    async def create(self, req: ResponsesRequest
                     ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """The response, or (``stream``) its events, the first already there."""
        with self.serving.metrics.request(req.model, "openai", streamed=req.stream) as tracked:
            generation = self._prepare(req)
            if not req.stream:
                return await self._complete(req, generation)
            events = self._stream(req, generation, tracked)
            return prepended(await anext(events), events)

    async def _complete(self, req: ResponsesRequest, generation: Generation
                        ) -> dict[str, Any]:
        output = _Output(f"resp_{uuid.uuid4().hex}", response_tools.kinds_of(req.tools))
        prompt = completion = 0
        incomplete = False
        chunks = generation.chunks()
        try:
            async for chunk in chunks:
                output.add(chunk)
                if chunk.finish_reason is not None:
                    prompt, completion = chunk.prompt_tokens, chunk.completion_tokens
                    incomplete = chunk.finish_reason == "length"
        finally:
            await chunks.aclose()
        output.finish(incomplete)
        self.serving.metrics.tokens(generation.model, prompt, completion)
        return self._response(req, output.response_id, int(time.time()), generation.model,
                              "incomplete" if incomplete else "completed", output.items,
                              (prompt, completion), incomplete)

    async def _stream(self, req: ResponsesRequest, generation: Generation, tracked: Any
                      ) -> AsyncGenerator[dict[str, Any], None]:
        output = _Output(f"resp_{uuid.uuid4().hex}", response_tools.kinds_of(req.tools))
        created = int(time.time())
        sequence = 0

        def event(body: dict[str, Any]) -> dict[str, Any]:
            nonlocal sequence
            body["sequence_number"] = sequence
            sequence += 1
            return body

        def response(status: str, usage: tuple[int, int] | None = None,
                     incomplete: bool = False) -> dict[str, Any]:
            return self._response(req, output.response_id, created, generation.model, status,
                                  output.items, usage, incomplete)

        chunks = generation.chunks()
        try:
            first = await anext(chunks, None)  # errors before any output raise from here
            yield event({"type": "response.created", "response": response("in_progress")})
            yield event({"type": "response.in_progress", "response": response("in_progress")})
            usage, incomplete = (0, 0), False
            async for chunk in prepended(first, chunks):
                tracked.first_output()
                for body in output.add(chunk):
                    yield event(body)
                if chunk.finish_reason is not None:
                    usage = (chunk.prompt_tokens, chunk.completion_tokens)
                    incomplete = chunk.finish_reason == "length"
            for body in output.finish(incomplete):
                yield event(body)
            self.serving.metrics.tokens(generation.model, *usage)
            # response.completed also when cut short (its status says incomplete), as vLLM
            # sends it: the SDK's stream helpers and the Agents SDK wait for that event
            yield event({"type": "response.completed", "response": response(
                "incomplete" if incomplete else "completed", usage, incomplete)})
        except OvserveError as exc:
            tracked.fail(exc)
            raise
        finally:
            tracked.finish()
            await chunks.aclose()


async def events_sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them (``event:`` and ``data:`` lines); an error
    after the first byte is an ``error`` event."""
    try:
        async for body in events:
            yield f"event: {body['type']}\ndata: {json.dumps(body)}\n\n"
    except OvserveError as exc:
        error = {"type": "error", "code": type(exc).__name__, "message": str(exc),
                 "param": getattr(exc, "param", None)}
        yield f"event: error\ndata: {json.dumps(error)}\n\n"
    finally:
        await events.aclose()  # type: ignore[attr-defined]

