"""Deterministic mode (--deterministic) on the real model behind a real server: the same
request gives the same tokens alone, again once its prompt was seen, beside other requests,
joining running ones, as copies sent together, streamed or not, greedy or seeded. What the
default mode does not promise (README, "Reproducibility"), this mode does, and this checks it
under whatever kernels the machine runs (`make test-kernels` runs it under others). Requests
queue in this mode (one sequence at a time): the lengths here are kept small."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from tests.conftest import REPO
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"
TOKENS = 48
TARGET: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three planets and one fact about each."}]
OTHERS = ["What is the theory of relativity?", "Write a poem about bees.",
          "Explain photosynthesis to a child, with examples. " * 6, "List ten fruits.",
          "How do airplanes fly?", "Tell me a story about a dragon.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def server(default_model_dir: object) -> Iterator[Server]:
    server = start_server(REPO / "graphs/llm/config.json", "--deterministic")
    yield server
    assert server.terminate() == 0
    assert "deterministic (one sequence at a time, whole-prompt prefill, no prefix cache)" \
        in server.log


@pytest.fixture
async def client(server: Server) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{server.rest_url}/v1", api_key="unused",
                                  max_retries=0) as client:
        yield client


def forced(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": TOKENS, "extra_body": {"ignore_eos": True},
            **extra}


async def answer(client: openai.AsyncOpenAI, **sampling: Any) -> str:
    reply = await client.chat.completions.create(messages=TARGET, **forced(**sampling))
    assert reply.usage is not None and reply.usage.completion_tokens == TOKENS
    return reply.choices[0].message.content or ""


async def streamed(client: openai.AsyncOpenAI, **sampling: Any) -> str:
    stream: AsyncStream[ChatCompletionChunk] = await client.chat.completions.create(
        messages=TARGET, stream=True, **forced(**sampling))
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def others(client: openai.AsyncOpenAI, tokens: int) -> None:
    """Seven other requests, sampled (they draw from the engine's random generator too)."""
    await asyncio.gather(*[client.completions.create(
        prompt=text, **forced(max_tokens=tokens, temperature=0.8, seed=i))
        for i, text in enumerate(OTHERS)])


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 11}],
                         ids=["greedy", "seeded"])
async def test_the_same_request_gives_the_same_tokens_whatever_else_runs(
        client: openai.AsyncOpenAI, sampling: dict[str, Any]) -> None:
    alone = await answer(client, **sampling)
    assert alone.strip()
    assert await answer(client, **sampling) == alone  # its prompt seen before
    assert await streamed(client, **sampling) == alone  # streamed, as the non-streamed one
    # beside 7 others started with it, and joining 7 that are already running
    together = await asyncio.gather(answer(client, **sampling), others(client, TOKENS))
    assert together[0] == alone
    running = asyncio.create_task(others(client, 2 * TOKENS))
    await asyncio.sleep(0.5)
    joined = await streamed(client, **sampling)
    await running
    assert joined == alone
    copies = await asyncio.gather(*[answer(client, **sampling) for _ in range(5)])
    assert copies == [alone] * 5

