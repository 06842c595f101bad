"""Plain types of the chat layer that cross layers: what a chat request asks of it (tools,
tool choice, template settings) and what parsed output carries (tool call deltas)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, description and JSON schema of arguments."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object",
                                                                "properties": {}})

    def as_dict(self) -> dict[str, Any]:
        """OpenAI's ``{"type": "function", "function": {...}}``, as chat templates take it."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description is not None:
            function["description"] = self.description
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class ChatSettings:
    """What a chat request asks of the chat layer beside its messages and sampling."""

    tools: tuple[Tool, ...] = ()
    #: "auto", "none", "required", or the name of the one function that must be called
    tool_choice: str = "auto"
    named_tool: bool = False  # tool_choice names a function
    parallel_tool_calls: bool = True
    #: variables for the chat template (vLLM's chat_template_kwargs, e.g. enable_thinking)
    template_kwargs: tuple[tuple[str, Any], ...] = ()
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template: str | None = None  # a request's own template (when the server trusts it)

    @property
    def calls_tools(self) -> bool:
        """Whether tool calls are looked for in the output."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def forced(self) -> bool:
        """Whether the output must be tool calls (``required`` or a named function)."""
        return self.calls_tools and (self.named_tool or self.tool_choice == "required")


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call in the output: the first piece of a call has its ``id`` and
    ``name``, later ones fragments of its ``arguments`` (a JSON text when joined)."""

    index: int  # the call's number in its choice
    id: str | None = None
    name: str | None = None
    arguments: str = ""
