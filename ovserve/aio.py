"""Async iteration helpers shared by layers (imports nothing of ovserve)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


async def merged(sources: Sequence[AsyncIterator[T]]) -> AsyncGenerator[T, None]:
    """The items of several async iterators as they come. An exception from any of them is
    raised at once; closing the result (or an exception) cancels every source."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump(source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:
            await queue.put(exc)
        finally:
            await queue.put(_DONE)

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()


async def prepended(first: T | None, rest: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """``first`` (unless None), then the items of ``rest``; closing the result closes ``rest``
    (a stream whose first item was awaited before its response began)."""
    try:
        if first is not None:
            yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()
