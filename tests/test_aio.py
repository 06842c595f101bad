"""ovserve.aio: the async iteration helpers the transports build their streams from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from ovserve.aio import merged, prepended


class _Source:
    """An async generator that records whether it was closed."""

    def __init__(self, items: list[int]) -> None:
        self.items = items
        self.closed = False

    async def run(self) -> AsyncGenerator[int, None]:
        try:
            for item in self.items:
                yield item
        finally:
            self.closed = True


def test_prepended_yields_the_first_item_then_the_rest() -> None:
    async def collect() -> list[int]:
        return [item async for item in prepended(1, _Source([2, 3]).run())]

    assert asyncio.run(collect()) == [1, 2, 3]


def test_prepended_skips_a_missing_first_item() -> None:
    async def collect() -> list[int]:
        return [item async for item in prepended(None, _Source([2]).run())]

    assert asyncio.run(collect()) == [2]


def test_closing_prepended_early_closes_the_rest() -> None:
    source = _Source([2, 3, 4])

    async def take_two() -> list[int]:
        stream = prepended(1, source.run())
        taken = [await anext(stream), await anext(stream)]
        await stream.aclose()  # the client left after two items
        return taken

    assert asyncio.run(take_two()) == [1, 2]
    assert source.closed


def test_merged_yields_every_source_item() -> None:
    async def collect() -> list[int]:
        return [item async for item in merged([_Source([1, 2]).run(), _Source([3]).run()])]

    assert sorted(asyncio.run(collect())) == [1, 2, 3]
