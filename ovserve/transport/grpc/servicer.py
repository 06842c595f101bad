"""``inference.GRPCInferenceService`` on grpcio's asyncio server: decode, call the data plane,
encode. Errors raised here reach the client through ``ErrorInterceptor``.

ModelStreamInfer follows OVMS/Triton: one response per output packet carrying
``OVMS_MP_TIMESTAMP`` and the id of the request it answers; request parameters become side
packets (first request); errors go in-band as ``error_message`` and the stream stays open; the
server never closes a stream until the client half-closes it. A client that goes away cancels
the run, which closes every running generator down to the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.transport.grpc import codec
from ovserve.transport.kserve import DataPlane, StreamError


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=self.plane.live())

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.plane.ready())

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ready, _ = self.plane.model_ready(request.name, request.version or None, "grpc")
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self.plane.server_metadata()
        return service_pb2.ServerMetadataResponse(name=meta.name, version=meta.version,
                                                  extensions=list(meta.extensions))

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return codec.encode_metadata(
            self.plane.model_metadata(request.name, request.version or None, "grpc"))

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        response = await self.plane.infer(
            request.model_name, lambda: codec.decode_request(request), "grpc")
        return codec.encode_response(response)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async def requests() -> AsyncIterator[Any]:
            async for request in request_iterator:
                yield codec.decode_stream_request(request)

        responses = self.plane.stream(requests(), "grpc_stream")
        try:
            async for item in responses:
                if isinstance(item, StreamError):
                    yield service_pb2.ModelStreamInferResponse(
                        error_message=str(item.error),
                        infer_response=service_pb2.ModelInferResponse(
                            model_name=item.model, id=item.id))
                else:
                    yield service_pb2.ModelStreamInferResponse(
                        infer_response=codec.encode_response(item))
        finally:
            await responses.aclose()  # type: ignore[attr-defined]
