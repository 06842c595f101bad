"""Requests in flight on one servable, so a config reload can drain it before unloading.

A servable counts each run (unary or stream) from its start to its end. A reload that replaces
or removes a servable *retires* it: lookups no longer return it, a request that got it just
before is handed to its successor (or refused: it was removed), and it unloads once the
count is back to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ovserve.errors import OvserveError, ServableNotFound

T = TypeVar("T")


class InFlight(Generic[T]):
    """The count of runs on one servable, and where new ones go once it is retired."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.retired = False
        self.successor: T | None = None
        #: what a request gets when the servable is retired without a successor
        self.refusal: Callable[[], OvserveError] = lambda: ServableNotFound(
            f"servable {name!r} is no longer served (removed from the config)")
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def exit(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.exit()

    def retire(self, successor: T | None,
               refusal: Callable[[], OvserveError] | None = None) -> None:
        """No new runs here: they go to ``successor``, or are refused (``refusal``)."""
        self.retired, self.successor = True, successor
        if refusal is not None:
            self.refusal = refusal

    def next(self) -> T:
        """The servable a new run on this retired one goes to (raises when there is none)."""
        if self.successor is None:
            raise self.refusal()
        return self.successor

    async def drained(self) -> None:
        """Returns once no run is in flight."""
        while self.count:
            self._idle = asyncio.Event()
            await self._idle.wait()
