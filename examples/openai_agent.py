"""The OpenAI Agents SDK against ovserve's Responses API: an agent with one function tool
runs to completion, run whole and streamed; then the SDK's default loop (tool call, its
output sent back, the model again, a final answer). Prints one JSON line per run, for
tests/examples/test_agent_clients.py.

    .venv-clients/bin/python examples/openai_agent.py --base_url http://localhost:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json

from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    RunResultStreaming,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from pydantic import BaseModel, Field


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Forecast(BaseModel):
    """The loop's final answer (its schema bounds the answer's length)."""

    summary: str = Field(max_length=60)


def summary(kind: str, result: RunResult | RunResultStreaming) -> str:
    output = result.final_output
    return json.dumps({"run": kind, "final_output": output.model_dump()
                       if isinstance(output, BaseModel) else output,
                       "items": [item.type for item in result.new_items],
                       "responses": len(result.raw_responses)})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base_url", default="http://localhost:8000/v1")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    set_tracing_disabled(True)  # no traces to OpenAI's servers
    client = AsyncOpenAI(base_url=args.base_url, api_key="unused")
    agent = Agent(
        name="weather", instructions="Answer with the weather tool.", tools=[get_weather],
        model=OpenAIResponsesModel(model=args.model, openai_client=client),
        # the tool must be called; its answer is the agent's (a 135M model's own words
        # after it would make the run depend on what the model says)
        model_settings=ModelSettings(tool_choice="required", parallel_tool_calls=False,
                                     max_tokens=150),
        tool_use_behavior="stop_on_first_tool")
    result = await Runner.run(agent, "What is the weather in Paris?", max_turns=3)
    print(summary("run", result))
    streamed = Runner.run_streamed(agent, "What is the weather in Rome?", max_turns=3)
    events = [event.type async for event in streamed.stream_events()]
    print(summary("run_streamed", streamed))
    print(json.dumps({"events": sorted(set(events))}))

    # The SDK's default loop: the tool's output goes back to the model, whose next answer is
    # the final one. The first turn must call the tool (required); the SDK then resets the
    # tool choice to auto, and the output type's JSON schema (sent on every turn as
    # text.format) makes the second turn an answer rather than another call.
    loop = Agent(
        name="weather loop", instructions="Answer with the weather tool.", tools=[get_weather],
        model=OpenAIResponsesModel(model=args.model, openai_client=client),
        model_settings=ModelSettings(tool_choice="required", parallel_tool_calls=False,
                                     max_tokens=150),
        output_type=Forecast)
    result = await Runner.run(loop, "What is the weather in Oslo?", max_turns=4)
    print(summary("loop", result))
    streamed = Runner.run_streamed(loop, "What is the weather in Lima?", max_turns=4)
    async for _ in streamed.stream_events():
        pass
    print(summary("loop_streamed", streamed))


if __name__ == "__main__":
    asyncio.run(main())
