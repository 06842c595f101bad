"""LangChain's ChatOpenAI against ovserve: tools bound with bind_tools (called and streamed),
and with_structured_output by JSON schema and by function calling. Prints one JSON line per
check, for tests/examples/test_agent_clients.py.

    .venv-clients/bin/python examples/langchain_tools.py --base_url http://localhost:8000/v1
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from langchain_core.messages import AIMessageChunk, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field


@tool
def get_weather(city: str, days: int) -> str:
    """The weather forecast for a city, for a number of days."""
    return f"sunny in {city} for {days} days"


class Trip(BaseModel):
    """A trip: where to, and for how many days."""

    city: str = Field(max_length=20)
    days: int = Field(ge=1, le=14)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base_url", default="http://localhost:8000/v1")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    llm = ChatOpenAI(base_url=args.base_url, api_key="unused", model=args.model,  # type: ignore[arg-type]
                     max_tokens=200, temperature=0)
    question = "What is the weather in Paris for the next 3 days?"

    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    message = bound.invoke(question)
    print(json.dumps({"check": "bind_tools", "tool_calls": message.tool_calls}))

    merged: Any = None
    for chunk in bound.stream(question):
        assert isinstance(chunk, AIMessageChunk)
        merged = chunk if merged is None else merged + chunk
    print(json.dumps({"check": "bind_tools streamed", "tool_calls": merged.tool_calls,
                      "chunks": len(merged.tool_call_chunks)}))

    call = message.tool_calls[0]
    answer = llm.bind_tools([get_weather], tool_choice="none").invoke(
        [("user", question), message,
         ToolMessage(content=get_weather.invoke(call["args"]), tool_call_id=call["id"])])
    print(json.dumps({"check": "tool round trip", "content": answer.content}))

    for method in ("json_schema", "function_calling"):
        trip = llm.with_structured_output(Trip, method=method).invoke(  # type: ignore[arg-type]
            "Plan a trip: a city and a number of days.")
        assert isinstance(trip, Trip)
        print(json.dumps({"check": f"with_structured_output {method}",
                          "trip": trip.model_dump()}))


if __name__ == "__main__":
    main()
