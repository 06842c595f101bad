"""The one KServe v2 data plane: REST and gRPC decode into its request type, call it, and
encode its response type. It owns health, metadata, version checks, the input-name check
(through the servable), output selection, metrics, and ModelStreamInfer's sessions."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator, Callable

from ovserve import __version__
from ovserve.errors import (
    InvalidInput,
    OvserveError,
    ServableNotFound,
    ServableNotReady,
    Unsupported,
)
from ovserve.graph.executor import GraphRun, OutputPacket, RunError
from ovserve.protocol.tensor import Tensor
from ovserve.serving.model import ModelServable
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from ovserve.transport import tracing
from ovserve.transport.kserve.types import (
    InferRequest,
    InferResponse,
    ModelMetadata,
    RejectedRequest,
    RequestedOutput,
    ServerMetadata,
    StreamError,
    TensorSpec,
)
from ovserve.transport.metrics import Metrics
from ovserve.transport.names import ServedNames
from ovserve.transport.state import ServerState

VERSIONS = ("1",)


class DataPlane:
    def __init__(self, registry: Registry, metrics: Metrics, state: ServerState,
                 names: ServedNames | None = None) -> None:
        self.registry = registry
        self.metrics = metrics
        self.state = state
        #: --served_model_name: aliases answered as their servables (every API)
        self.names = names or ServedNames()

    # -- server and models ------------------------------------------------------------------

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata("ovserve", __version__)

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.state.ready

    def servable(self, model: str, version: str | None = None
                 ) -> tuple[Servable | ModelServable, str | None]:
        """The servable (and LoRA adapter) a model name and version name: a plain model's
        versions are its own; a graph's only version is "1". An unknown version is not found,
        as KServe answers. An alias (--served_model_name) means its servable."""
        model = self.names.servable(model)
        plain = self.registry.model(model)
        if plain is not None:
            plain.version(version)  # raises ServableNotFound
            return plain, None
        servable, adapter = self.registry.resolve(model, llm=False)
        if version not in (None, "", *VERSIONS):
            raise ServableNotFound(f"servable {model!r} has no version {version!r} "
                                   f"(versions: {', '.join(VERSIONS)})")
        return servable, adapter

    def model_ready(self, model: str, version: str | None = None, interface: str = ""
                    ) -> tuple[bool, str | None]:
        """Whether a model can take requests, and why not. Raises for unknown models.
        ``interface`` ("grpc", "rest"): counted in OVMS's metrics."""
        with self.metrics.status_call(model, interface, "ModelReady"):
            try:
                servable, _ = self.servable(model, version)
            except ServableNotReady as exc:
                return False, str(exc)
            ready = self.state.accepting and servable.ready
            return ready, None if ready else f"servable {model!r} is not ready"

    def model_metadata(self, model: str, version: str | None = None, interface: str = ""
                       ) -> ModelMetadata:
        with self.metrics.status_call(model, interface, "ModelMetadata"):
            return self._model_metadata(model, version)

    def _model_metadata(self, model: str, version: str | None) -> ModelMetadata:
        servable, _ = self.servable(model, version)
        if isinstance(servable, ModelServable):  # the real names, datatypes and shapes
            return ModelMetadata(
                model, [TensorSpec(i.name, i.datatype, i.shape) for i in servable.inputs(version)],
                [TensorSpec(o.name, o.datatype, o.shape) for o in servable.outputs(version)],
                versions=tuple(map(str, servable.versions)),
                rt_info=servable.version(version)[1].rt_info)
        return ModelMetadata(model, [TensorSpec(n) for n in servable.graph.input_names],
                             [TensorSpec(n) for n in servable.graph.output_names],
                             versions=VERSIONS)

    # -- inference --------------------------------------------------------------------------

    async def infer(self, model: str, decode: Callable[[], InferRequest],
                    interface: str) -> InferResponse:
        """One graph run on the request ``decode`` gives, counted in the metrics under
        ``model`` and ``interface`` (a request that does not decode counts as an error)."""
        with self.metrics.request(model, interface) as tracked:
            if tracing.enabled():
                tracing.set_name(f"infer {model}")
                tracing.set_attributes({"gen_ai.request.model": model,
                                        "gen_ai.operation.name": "infer"})
            request = decode()
            servable, adapter = self.servable(request.model, request.version)
            if isinstance(servable, ModelServable):
                number, _ = servable.version(request.version)
                tracked.version = str(number)
                tracked.accept()
                outputs = await servable.infer(request.inputs, request.version)
                return InferResponse(request.model, select(servable, outputs, request.outputs),
                                     id=request.id, version=str(number), request=request)
            servable.check_inputs(request.inputs)
            tracked.accept()
            outputs = await servable.infer(
                request.inputs, side_packets=request.side_packets(),
                timestamp=request.timestamp, adapter=adapter)
            return InferResponse(request.model, select(servable, outputs, request.outputs),
                                 id=request.id, request=request)

    def stream(self, requests: AsyncIterator[InferRequest | RejectedRequest],
               interface: str) -> AsyncIterator[InferResponse | StreamError]:
        """ModelStreamInfer: every request runs on one graph run (opened by the first, whose
        parameters become side packets); one response per output packet, labelled with the
        id of the request it answers; errors in-band. Closing the iterator closes the run."""
        return InferStream(self, requests, interface).responses()


def select(servable: Servable | ModelServable, outputs: dict[str, Tensor],
           requested: list[RequestedOutput]) -> dict[str, Tensor]:
    """The requested outputs (all when none is named); an unknown name is an error."""
    if not requested:
        return outputs
    names = [o.name for o in requested]
    known = servable.output_names if isinstance(servable, ModelServable) else \
        servable.graph.output_names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"servable {servable.name} has no output {unknown[0]!r} "
                           f"(outputs: {', '.join(known)})")
    return {n: outputs[n] for n in outputs if n in names}


class InferStream:
    """One ModelStreamInfer call: a reader taking requests off the wire, a sender feeding them
    to one GraphRun one at a time (the next once the graph is idle: a generator node streams
    one request at a time, as in OVMS), a pump sending the run's events. Requests sent while
    another streams wait their turn instead of being rejected (Triton's decoupled models)."""

    def __init__(self, plane: DataPlane, requests: AsyncIterator[InferRequest | RejectedRequest],
                 interface: str) -> None:
        self.plane = plane
        self.metrics = plane.metrics
        self.requests = requests
        self.interface = interface
        self.out: asyncio.Queue[InferResponse | StreamError | None] = asyncio.Queue()
        self.pending: asyncio.Queue[InferRequest | None] = asyncio.Queue()
        self.servable: Servable | None = None
        self.model = ""
        self.run: GraphRun | None = None
        # the timestamps requests were sent at, and their ids: requests go one at a time, so
        # an event answers the last request sent at or before its timestamp
        self.sent_at: list[int] = []
        self.sent_ids: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stack = contextlib.AsyncExitStack()

    def _error(self, model: str, request_id: str, exc: OvserveError) -> StreamError:
        self.metrics.error(model, self.interface, exc)
        return StreamError(model, request_id, exc)

    async def _open(self, request: InferRequest) -> GraphRun:
        servable, adapter = self.plane.servable(request.model, request.version)
        if isinstance(servable, ModelServable):
            raise Unsupported(f"servable {request.model!r} is a plain model: it answers "
                              "ModelInfer, not streams (ModelStreamInfer serves graphs)")
        run = servable.stream(side_packets=request.side_packets(), adapter=adapter)
        self.servable, self.model = servable, request.model
        self.stack.enter_context(self.metrics.stream(request.model, self.interface))
        await self.stack.enter_async_context(run)
        self.run = run
        self.tasks.append(asyncio.create_task(self._pump(run)))
        return run

    async def _read(self) -> None:
        """Requests off the wire: rejected ones answered at once, the rest queued in order."""
        try:
            async for request in self.requests:
                self.metrics.received(request.model, self.interface)
                if isinstance(request, RejectedRequest):
                    self.metrics.rejected(request.model, self.interface)
                    self.out.put_nowait(self._error(request.model, request.id, request.error))
                else:
                    self.pending.put_nowait(request)
        finally:
            self.pending.put_nowait(None)  # client half-closed

    async def _send(self) -> None:
        """Queued requests into the run, each once the previous one is done."""
        while (request := await self.pending.get()) is not None:
            try:
                run = self.run or await self._open(request)
                assert self.servable is not None
                if request.model != self.model:
                    raise InvalidInput(f"this stream serves {self.model}; open a new stream "
                                       f"for {request.model}")
                self.servable.check_inputs(request.inputs, partial=True)
                timestamp = run.send(request.inputs, request.timestamp)
            except OvserveError as exc:
                self.metrics.rejected(request.model, self.interface)
                self.out.put_nowait(self._error(request.model, request.id, exc))
                continue
            self.metrics.accepted(request.model, self.interface)
            self.sent_at.append(timestamp)
            self.sent_ids.append(request.id)
            await run.idle()
        if self.run is not None:
            self.run.close_inputs()  # end once the graph drains
        else:
            self.out.put_nowait(None)

    def _request_id(self, timestamp: int) -> str:
        index = bisect.bisect_right(self.sent_at, timestamp) - 1
        return self.sent_ids[max(index, 0)] if self.sent_ids else ""

    async def _pump(self, run: GraphRun) -> None:
        try:
            async for event in run.events():
                if isinstance(event, RunError):
                    self.metrics.graph_error(self.model, self.interface)
                    self.out.put_nowait(self._error(
                        self.model, self._request_id(event.timestamp), event.error))
                    continue
                assert isinstance(event, OutputPacket)
                if isinstance(event.payload, Tensor):
                    self.metrics.response(self.model, self.interface)
                    self.out.put_nowait(InferResponse(
                        self.model, {event.stream: event.payload},
                        id=self._request_id(event.timestamp), timestamp=event.timestamp))
        finally:
            self.out.put_nowait(None)

    async def responses(self) -> AsyncIterator[InferResponse | StreamError]:
        reader = asyncio.create_task(self._read())
        sender = asyncio.create_task(self._send())
        self.tasks += [reader, sender]
        try:
            while (item := await self.out.get()) is not None:
                yield item
            await sender
        finally:
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.stack.aclose()  # closes the run: generators and engine requests end
