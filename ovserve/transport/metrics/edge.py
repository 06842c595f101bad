"""What the transports measure of each request, kept once per (servable, interface, method,
version) and read by every view at scrape time.

A request is counted when it arrives; ``accept()`` marks it as having reached its graph (OVMS's
"accepted": past decoding and the input check); it then succeeds or fails once, and its
duration is observed once. Streams (ModelStreamInfer) are sessions: each request in one is
received, then accepted or rejected; each output is a response; each in-band error a graph
error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ovserve.engine import exemplars
from ovserve.engine.measurements import ALL_TIME_BOUNDS, OVMS_BOUNDS_US, Distribution
from ovserve.transport.errors import shape_of

__all__ = ["OVMS_BOUNDS_US", "Edge", "EdgeKey", "EdgeMeasurements"]

#: the seconds bounds every edge distribution keeps: ovserve's, vLLM's and OVMS's
EDGE_BOUNDS = ALL_TIME_BOUNDS


@dataclass(frozen=True, slots=True)
class EdgeKey:
    servable: str
    #: ovserve's interface name: "grpc", "rest", "grpc_stream", "openai"
    interface: str
    #: OVMS's method: ModelInfer, ModelInferStream, Unary, Stream
    method: str
    #: the plain model version that answered ("" for graphs, or not known)
    version: str = ""

    @property
    def api(self) -> str:
        return "V3" if self.interface == "openai" else "KServe"

    @property
    def ovms_interface(self) -> str:
        return "gRPC" if self.interface.startswith("grpc") else "REST"


def method_of(interface: str, streamed: bool) -> str:
    if interface == "openai":
        return "Stream" if streamed else "Unary"
    return "ModelInferStream" if interface == "grpc_stream" else "ModelInfer"


def _seconds() -> Distribution:
    return Distribution(EDGE_BOUNDS)


@dataclass
class Edge:
    """Counts and times of one key's requests."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    accepted: int = 0
    rejected: int = 0
    graph_errors: int = 0
    responses: int = 0
    #: failures by gRPC status code name
    errors: dict[str, int] = field(default_factory=dict)
    #: requests (unary) or graphs (streams) in progress
    in_flight: int = 0
    open_streams: int = 0
    ok_duration: Distribution = field(default_factory=_seconds)
    failed_duration: Distribution = field(default_factory=_seconds)
    first_output: Distribution = field(default_factory=_seconds)
    #: stream sessions' lengths (ModelStreamInfer)
    sessions: Distribution = field(default_factory=_seconds)


class EdgeMeasurements:
    """Every key's ``Edge``, and generation tokens per model id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edges: dict[EdgeKey, Edge] = {}
        #: model id (LoRA adapters included) -> [prompt tokens, generated tokens]
        self._tokens: dict[str, list[int]] = {}

    def _edge(self, key: EdgeKey) -> Edge:
        """The key's Edge, made on first use (not on every call: an Edge holds four
        distributions, and a stream updates its key once per chunk). Called under the lock."""
        edge = self._edges.get(key)
        if edge is None:
            edge = self._edges[key] = Edge()
        return edge

    def update(self, key: EdgeKey, **increments: int) -> None:
        with self._lock:
            edge = self._edge(key)
            for name, value in increments.items():
                setattr(edge, name, getattr(edge, name) + value)

    def error(self, key: EdgeKey, code: str) -> None:
        with self._lock:
            errors = self._edge(key).errors
            errors[code] = errors.get(code, 0) + 1

    def observe(self, key: EdgeKey, distribution: str, seconds: float,
                exemplar: Mapping[str, str] | None = None) -> None:
        with self._lock:
            getattr(self._edge(key), distribution).observe(seconds, exemplar)

    def tokens(self, model: str, prompt: int, generated: int) -> None:
        with self._lock:
            counts = self._tokens.setdefault(model, [0, 0])
            counts[0] += prompt
            counts[1] += generated

    def snapshot(self) -> tuple[dict[EdgeKey, Edge], dict[str, tuple[int, int]]]:
        """Copies of every edge and of the token counts."""
        import copy

        with self._lock:
            return (copy.deepcopy(self._edges),
                    {m: (p, g) for m, (p, g) in self._tokens.items()})


class Tracked:
    """One request: counted when made, then its acceptance, its first output (streams), its
    outcome and its duration, each recorded once."""

    def __init__(self, store: EdgeMeasurements, servable: str, interface: str,
                 streamed: bool) -> None:
        self.store = store
        self.key = EdgeKey(servable, interface, method_of(interface, streamed))
        self.streamed = streamed
        self.started = time.perf_counter()
        self.exemplar = exemplars.current()  # the request's ids, on its observations
        self.accepted = interface == "openai"  # V3 requests reach their graph (as in OVMS)
        self.first_seen = self.failed_once = self.finished = False
        store.update(self.key, received=1, in_flight=1, open_streams=int(streamed))

    @property
    def version(self) -> str:
        return self.key.version

    @version.setter
    def version(self, version: str) -> None:
        """The plain model version that answers (its request counts move there)."""
        if version == self.key.version:
            return
        old, key = self.key, self.key
        self.key = EdgeKey(key.servable, key.interface, key.method, version)
        self.store.update(old, received=-1, in_flight=-1, open_streams=-int(self.streamed))
        self.store.update(self.key, received=1, in_flight=1, open_streams=int(self.streamed))

    def accept(self) -> None:
        """The request reached its graph or model (past decoding and input checks)."""
        self.accepted = True

    def first_output(self) -> None:
        """An output went out (a stream's chunk): a response; the first one is timed."""
        self.store.update(self.key, responses=1)
        if not self.first_seen:
            self.first_seen = True
            self.store.observe(self.key, "first_output", time.perf_counter() - self.started,
                               self.exemplar)

    def fail(self, exc: BaseException) -> None:
        if not self.failed_once:
            self.failed_once = True
            self.store.error(self.key, shape_of(exc).grpc_code.name)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        elapsed = time.perf_counter() - self.started
        key = self.key
        self.store.update(key, in_flight=-1, open_streams=-int(self.streamed))
        if self.failed_once:
            self.store.update(key, failed=1, accepted=int(self.accepted),
                              rejected=int(not self.accepted),
                              graph_errors=int(self.accepted))
            self.store.observe(key, "failed_duration", elapsed, self.exemplar)
        else:
            self.store.update(key, succeeded=1, accepted=1,
                              responses=int(not self.streamed))
            self.store.observe(key, "ok_duration", elapsed, self.exemplar)
