"""The one error table, applied once per transport: exception handlers (HTTP) and an
interceptor (gRPC). An ovserve error keeps its message and status; anything else is logged and
the client gets an id to find it, never the exception's text or a traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve.errors import InvalidInput, ServableNotFound
from ovserve.transport.grpc.errors import ErrorInterceptor
from ovserve.transport.rest import errors


class Body(BaseModel):
    count: int


def app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    for prefix in ("/v1", "/v2"):
        @app.post(f"{prefix}/invalid")
        async def invalid() -> None:
            raise InvalidInput("temperature: must be at most 2", "temperature")

        @app.post(f"{prefix}/missing")
        async def missing() -> None:
            raise ServableNotFound("The model `x` does not exist")

        @app.post(f"{prefix}/bug")
        async def bug() -> None:
            raise RuntimeError("secret /srv/path/model.py detail")

        @app.post(f"{prefix}/typed")
        async def typed(body: Body) -> int:
            return body.count
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(app(), raise_server_exceptions=False)


def test_openai_paths_get_the_openai_envelope(client: TestClient) -> None:
    reply = client.post("/v1/invalid")
    assert reply.status_code == 400
    assert reply.json() == {"error": {"message": "temperature: must be at most 2",
                                      "type": "invalid_request_error", "param": "temperature",
                                      "code": None}}
    reply = client.post("/v1/missing")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "model_not_found"
    assert reply.json()["error"]["param"] == "model"
    reply = client.post("/v1/typed", json={"count": "many"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "count"
    reply = client.post("/v1/nowhere")
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "invalid_request_error"


def test_kserve_paths_get_kserve_errors(client: TestClient) -> None:
    reply = client.post("/v2/invalid")
    assert (reply.status_code, reply.json()) == (400, {"error": "temperature: must be at most 2"})
    assert client.post("/v2/missing").status_code == 404


def test_unexpected_errors_are_logged_and_answered_with_an_id(
    client: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        for path in ("/v1/bug", "/v2/bug"):
            reply = client.post(path)
            assert reply.status_code == 500
            error = reply.json()["error"]
            text = str(error["message"] if isinstance(error, dict) else error)
            assert text.startswith("internal error (error id ")
            assert "secret" not in reply.text and "RuntimeError" not in reply.text
            assert text.split()[-1].rstrip(")") in caplog.text  # the id leads to the log
    assert "secret /srv/path/model.py detail" in caplog.text


class Broken(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        if request.model_name == "invalid":
            raise InvalidInput("input 'x': bad")
        raise RuntimeError("secret /srv/path detail")

    async def ModelStreamInfer(self, requests: Any, context: Any) -> Any:
        async for _ in requests:
            raise RuntimeError("secret stream detail")
        yield service_pb2.ModelStreamInferResponse()


def test_grpc_interceptor_maps_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> list[tuple[grpc.StatusCode, str]]:
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Broken(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        found = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                for name in ("invalid", "bug"):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await stub.ModelInfer(service_pb2.ModelInferRequest(model_name=name))
                    found.append((info.value.code(), info.value.details() or ""))
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in stub.ModelStreamInfer(
                            iter([service_pb2.ModelInferRequest()])):
                        pass
                found.append((info.value.code(), info.value.details() or ""))
        finally:
            await server.stop(None)
        return found

    with caplog.at_level(logging.ERROR):
        found = asyncio.run(run())
    assert found[0] == (grpc.StatusCode.INVALID_ARGUMENT, "input 'x': bad")
    for code, details in found[1:]:
        assert code == grpc.StatusCode.INTERNAL
        assert details.startswith("internal error (error id ") and "secret" not in details
    assert "secret /srv/path detail" in caplog.text and "secret stream detail" in caplog.text
