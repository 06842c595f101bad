"""A hook around each node's processing, for whoever serves the run (the transport's traces):
``observer`` holds a function returning a context manager for one ``process`` call of a node
(its name, calculator and input timestamp). None, the default, costs one lookup per call.
Node tasks inherit the context of the code that opened the run, so setting it around a request
observes that request's nodes only."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar

NodeObserver = Callable[[str, str, int], AbstractContextManager[object]]

observer: ContextVar[NodeObserver | None] = ContextVar("ovserve_node_observer", default=None)
