"""A chat request's tools, tool choice and template fields as the chat layer takes them
(``protocol.chat.ChatSettings``), checked: a malformed tool or a choice that does not fit the
tools is a 400 naming the field. Chat completions and the Responses API both use it."""

from __future__ import annotations

from typing import Any

from ovserve.chat.tools import check_choice, check_parameters
from ovserve.errors import InvalidInput
from ovserve.protocol.chat import ChatSettings, Tool
from ovserve.transport.openai.protocol import (
    ChatCompletionRequest,
    NamedToolChoice,
    ToolDefinition,
)


def tools_of(definitions: list[ToolDefinition] | None, field: str = "tools"
             ) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for i, definition in enumerate(definitions or ()):
        function = definition.function
        if function.name in {t.name for t in tools}:
            raise InvalidInput(f"{field}.{i}.function.name: {function.name!r} is given twice",
                               field)
        tools.append(Tool(function.name, function.description, check_parameters(
            function.parameters, f"{field}.{i}.function.parameters")))
    return tuple(tools)


def settings(tools: tuple[Tool, ...], choice: str | NamedToolChoice | None,
             parallel: bool = True, template_kwargs: dict[str, Any] | None = None,
             reasoning_effort: str | None = None, field: str = "tool_choice",
             **template: Any) -> ChatSettings:
    """``ChatSettings`` from OpenAI's fields; ``template``: the chat template fields
    (add_generation_prompt, continue_final_message, chat_template)."""
    named = isinstance(choice, NamedToolChoice)
    name = choice.function.name if isinstance(choice, NamedToolChoice) else (
        choice or ("auto" if tools else "none"))
    check_choice(tools, name, named, field)
    kwargs = dict(template_kwargs or {})
    if reasoning_effort is not None:  # templates that take it read it as a variable
        kwargs.setdefault("reasoning_effort", reasoning_effort)
    for key in kwargs:
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidInput(f"chat_template_kwargs: {key!r} is not a template variable "
                               "name", "chat_template_kwargs")
    return ChatSettings(tools=tools, tool_choice=name, named_tool=named,
                        parallel_tool_calls=parallel, template_kwargs=tuple(kwargs.items()),
                        **template)


def chat_settings(req: ChatCompletionRequest) -> ChatSettings:
    return settings(tools_of(req.tools), req.tool_choice, req.parallel_tool_calls,
                    req.chat_template_kwargs, req.reasoning_effort,
                    add_generation_prompt=req.add_generation_prompt,
                    continue_final_message=req.continue_final_message,
                    chat_template=req.chat_template)
