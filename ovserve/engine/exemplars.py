"""The labels a request's observations carry as OpenMetrics exemplars: its request id
(X-Request-Id, the id in its log lines) and, when traced, its trace id.

The transports set them for the request's context (``tagged``); whoever observes a request's
latency takes ``current()`` while still in that context (an engine when the request is
submitted, the transport when it starts timing it) and hands it to ``Distribution.observe``.
OpenMetrics allows at most 128 characters of label names and values together, so the trace id
(40) comes first and the request id follows when it fits (any id up to 78 characters does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["MAX_LENGTH", "NONE", "current", "fit", "tag", "tagged"]

#: OpenMetrics' limit on an exemplar's label names and values, in characters
MAX_LENGTH = 128
#: the order labels are kept in when they do not all fit
PRIORITY = ("trace_id", "request_id")
NONE: Mapping[str, str] = MappingProxyType({})

_labels: ContextVar[Mapping[str, str]] = ContextVar("ovserve_exemplar", default=NONE)


def fit(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` in priority order, those that would pass ``MAX_LENGTH`` left out."""
    ordered = sorted(labels.items(), key=lambda kv: (
        PRIORITY.index(kv[0]) if kv[0] in PRIORITY else len(PRIORITY), kv[0]))
    kept: dict[str, str] = {}
    used = 0
    for name, value in ordered:
        if value and used + len(name) + len(value) <= MAX_LENGTH:
            kept[name] = value
            used += len(name) + len(value)
    return kept


def current() -> Mapping[str, str]:
    """The exemplar labels of the request served in this context (empty: none)."""
    return _labels.get()


def tag(**labels: str) -> None:
    """Add ``labels`` to this context's exemplar (for a context that ends with its request,
    such as a gRPC call's task)."""
    _labels.set(MappingProxyType(fit({**_labels.get(), **labels})))


@contextlib.contextmanager
def tagged(**labels: str) -> Iterator[None]:
    """``labels`` added to the exemplar for the block."""
    token = _labels.set(MappingProxyType(fit({**_labels.get(), **labels})))
    try:
        yield
    finally:
        _labels.reset(token)
