"""``inference.GRPCInferenceService`` on grpcio's asyncio server.

ModelStreamInfer follows OVMS/Triton: one response per output packet carrying
``OVMS_MP_TIMESTAMP``; request parameters become side packets (first request); errors go
in-band as ``error_message`` and the stream stays open; the server never closes a stream
until the client half-closes it. A client that goes away cancels the run, which closes
every running generator down to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve import __version__
from ovserve.errors import InvalidInput, OvserveError, ServableNotReady
from ovserve.graph.executor import GraphRun, OutputPacket, RunError
from ovserve.protocol.tensor import Tensor
from ovserve.serving.registry import Registry
from ovserve.serving.servable import Servable
from ovserve.transport import kserve
from ovserve.transport.errors import shape_of
from ovserve.transport.grpc import codec
from ovserve.transport.metrics import Metrics
from ovserve.transport.state import EXTENSIONS, ServerState

log = logging.getLogger(__name__)

class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, registry: Registry, metrics: Metrics, state: ServerState) -> None:
        self.registry = registry
        self.metrics = metrics
        self.state = state

    async def _abort(self, context: grpc.aio.ServicerContext, exc: OvserveError) -> None:
        await context.abort(shape_of(exc).grpc_code, str(exc))

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.state.ready)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            ready = self.state.servable_ready(request.name)
        except ServableNotReady:
            return service_pb2.ModelReadyResponse(ready=False)
        except OvserveError as exc:
            await self._abort(context, exc)
            raise
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerMetadataResponse(
            name="ovserve", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            servable, _ = self.registry.resolve(request.name, llm=False)
        except OvserveError as exc:
            await self._abort(context, exc)
            raise
        meta = kserve.metadata(request.name, servable.graph.input_names,
                               servable.graph.output_names)
        response = service_pb2.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"])
        for kind in ("inputs", "outputs"):
            for spec in meta[kind]:
                getattr(response, kind).add(**spec)
        return response

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            with self.metrics.request(request.model_name, "grpc"):
                return await self._infer(request)
        except OvserveError as exc:
            await self._abort(context, exc)  # raises
            raise

    async def _infer(self, request: Any) -> Any:
        servable, adapter = self.registry.resolve(request.model_name, llm=False)
        inputs = codec.request_inputs(servable.name, servable.graph.input_names, request)
        params = codec.parameters(request.parameters)
        outputs = await servable.infer(
            inputs, side_packets=kserve.side_packets(params),
            timestamp=params.get(kserve.TIMESTAMP_PARAMETER), adapter=adapter)
        wanted = [o.name for o in request.outputs]
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise InvalidInput(f"servable {servable.name} has no output {unknown[0]!r} "
                               f"(outputs: {', '.join(outputs)})")
        if wanted:
            outputs = {n: outputs[n] for n in wanted}
        return codec.infer_response(request.model_name, request.id, outputs)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        stream = _Stream(self.registry, self.metrics, request_iterator)
        async for response in stream.responses():
            yield response


class _Stream:
    """One ModelStreamInfer call: a reader feeding a GraphRun, a pump sending its events."""

    def __init__(self, registry: Registry, metrics: Metrics,
                 requests: AsyncIterator[Any]) -> None:
        self.registry = registry
        self.metrics = metrics
        self.requests = requests
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.servable: Servable | None = None
        self.run: GraphRun | None = None
        self.request_id = ""
        self.pump: asyncio.Task[None] | None = None
        self.stack = contextlib.AsyncExitStack()

    def _error(self, exc: OvserveError) -> Any:
        self.metrics.error(self.servable.name if self.servable else "", "grpc_stream", exc)
        return service_pb2.ModelStreamInferResponse(
            error_message=str(exc),
            infer_response=service_pb2.ModelInferResponse(id=self.request_id))

    async def _open(self, request: Any, params: dict[str, Any]) -> GraphRun:
        servable, adapter = self.registry.resolve(request.model_name, llm=False)
        run = servable.stream(side_packets=kserve.side_packets(params), adapter=adapter)
        self.servable = servable
        self.stack.enter_context(self.metrics.stream(servable.name, "grpc_stream"))
        await self.stack.enter_async_context(run)
        self.run = run
        self.pump = asyncio.create_task(self._pump(run))
        return run

    async def _read(self) -> None:
        try:
            async for request in self.requests:
                self.request_id = request.id
                self.metrics.requests.labels(request.model_name, "grpc_stream").inc()
                try:
                    params = codec.parameters(request.parameters)
                    run = self.run
                    if run is None:
                        run = await self._open(request, params)
                    elif self.servable is not None and request.model_name != self.servable.name:
                        raise InvalidInput(
                            f"this stream serves {self.servable.name}; open a new stream "
                            f"for {request.model_name}")
                    assert self.servable is not None
                    inputs = codec.request_inputs(
                        self.servable.name, self.servable.graph.input_names, request)
                    run.send(inputs, params.get(kserve.TIMESTAMP_PARAMETER))
                except OvserveError as exc:
                    self.out.put_nowait(self._error(exc))
        finally:
            if self.run is not None:
                self.run.close_inputs()  # client half-closed: end once the graph drains
            else:
                self.out.put_nowait(None)

    async def _pump(self, run: GraphRun) -> None:
        assert self.servable is not None
        name = self.servable.name
        try:
            async for event in run.events():
                if isinstance(event, RunError):
                    self.out.put_nowait(self._error(event.error))
                    continue
                assert isinstance(event, OutputPacket)
                tensor = event.payload
                if not isinstance(tensor, Tensor):
                    continue
                response = codec.infer_response(name, self.request_id, {event.stream: tensor},
                                                event.timestamp)
                self.out.put_nowait(service_pb2.ModelStreamInferResponse(
                    infer_response=response))
        finally:
            self.out.put_nowait(None)

    async def responses(self) -> AsyncIterator[Any]:
        reader = asyncio.create_task(self._read())
        try:
            while (item := await self.out.get()) is not None:
                yield item
            await reader
        finally:
            reader.cancel()
            if self.pump is not None:
                self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(reader, *(t for t in [self.pump] if t), return_exceptions=True)
            await self.stack.aclose()  # closes the run: generators and engine requests end
