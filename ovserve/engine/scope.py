"""What one call of handler code is bound to: the engine requests it makes, so whoever awaits
that call can abort them when its own request is cancelled (a client gone, a gRPC deadline
passed: handler code runs in a thread, which cannot be cancelled, but its engine requests
can), and the LoRA adapter its requests run on unless they name one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol


class Abortable(Protocol):
    def abort(self) -> None: ...


class CallScope:
    """The engine requests of one handler call; ``cancel`` aborts them and any made later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Abortable] = []
        self.cancelled = False

    def add(self, request: Abortable) -> None:
        with self._lock:
            self._requests.append(request)
            cancelled = self.cancelled
        if cancelled:
            request.abort()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            requests = list(self._requests)
        for request in requests:
            request.abort()


_scope: ContextVar[CallScope | None] = ContextVar("ovserve_call_scope", default=None)


@contextlib.contextmanager
def within(scope: CallScope | None) -> Iterator[None]:
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def record(request: Any) -> None:
    """Called by engines for every request they accept."""
    scope = _scope.get()
    if scope is not None:
        scope.add(request)


_adapter: ContextVar[str | None] = ContextVar("ovserve_lora_adapter", default=None)


@contextlib.contextmanager
def on_adapter(adapter: str | None) -> Iterator[None]:
    """Within this block (this thread or task), requests a handler prepares run on LoRA
    ``adapter`` (the model name a KServe request asked for) unless they name one."""
    token = _adapter.set(adapter)
    try:
        yield
    finally:
        _adapter.reset(token)


def current_adapter() -> str | None:
    """The LoRA adapter bound for this handler call (see ``on_adapter``), if any."""
    return _adapter.get()
