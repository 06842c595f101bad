"""KServe v2 REST: JSON (or the binary tensor extension) <-> the data plane's types, and the
routes for health, metadata and ``infer``. Errors are raised; ``rest.errors`` answers them."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import Tensor
from ovserve.transport.kserve import (
    DataPlane,
    InferRequest,
    InferResponse,
    RequestedOutput,
    tensors,
)
from ovserve.transport.kserve.types import ModelMetadata
from ovserve.transport.rest.disconnect import cancel_on_disconnect
from ovserve.transport.rest.kserve_schemas import (
    InferResponseBody,
    KServeError,
    request_body_schema,
)

HEADER_LENGTH = "Inference-Header-Content-Length"


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise InvalidInput("malformed JSON request body: nested too deeply") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise InvalidInput(f"malformed JSON request body{where}: {exc}") from exc


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _input(model: str, spec: Any, binary: bytes, offset: int) -> tuple[Tensor, int]:
    """One entry of ``inputs``: its tensor and the binary offset after it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidInput("each entry of 'inputs' needs a 'name'")
    name = spec["name"]
    datatype, shape = spec.get("datatype"), spec.get("shape")
    if not isinstance(datatype, str):
        raise InvalidInput(f"servable {model}: input {name!r}: 'datatype' is required")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"servable {model}: input {name!r}: 'shape' must be a list of "
                           "integers")
    size = _object(spec.get("parameters"), f"input {name!r}: 'parameters'").get(
        "binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InvalidInput(
                f"servable {model}: input {name!r}: binary_data_size {size} does not "
                f"fit the {len(binary) - offset} binary bytes left in the body")
        raw = binary[offset:offset + size]
        return tensors.tensor_from_raw(model, name, datatype, shape, raw), offset + size
    if "data" not in spec:
        raise InvalidInput(f"servable {model}: input {name!r} has no 'data'")
    return tensors.tensor_from_values(model, name, datatype, shape, spec["data"]), offset


def decode_request(model: str, version: str | None, body: bytes,
                   header_length: int | None) -> InferRequest:
    """An infer body (JSON, or JSON header + binary tensors) -> the data plane's request."""
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes")
        header, binary = _parse_json(body[:header_length]), body[header_length:]
    else:
        header, binary = _parse_json(body), b""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    inputs: dict[str, Tensor] = {}
    offset = 0
    for spec in header["inputs"]:
        tensor, offset = _input(model, spec, binary, offset)
        if tensor.name in inputs:
            raise InvalidInput(f"servable {model}: input {tensor.name!r} given twice")
        inputs[tensor.name] = tensor
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} binary bytes after the last input")
    outputs = header.get("outputs") or []
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    request_id = header.get("id") or ""  # null: no id, as the schema allows
    if not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(
        model, inputs, id=request_id, version=version,
        parameters=_object(header.get("parameters"), "'parameters'"),
        outputs=[RequestedOutput(o["name"], _object(o.get("parameters"),
                                                    f"output {o['name']!r}: 'parameters'"))
                 for o in outputs])


def encode_response(response: InferResponse) -> Response:
    """JSON, or JSON header + binary tensors for outputs asked for with ``binary_data``
    (per output, or all with the request parameter ``binary_data_output``)."""
    request = response.request
    binary_all = bool(request and request.parameters.get("binary_data_output"))
    options = {o.name: o.parameters for o in (request.outputs if request else [])}
    chunks: list[bytes] = []
    entries = []
    for name, tensor in response.outputs.items():
        entry: dict[str, Any] = {"name": name, "datatype": tensor.datatype,
                                 "shape": list(tensor.shape)}
        if (options.get(name) or {}).get("binary_data", binary_all):
            raw = tensors.output_raw(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = tensors.output_values(tensor)
        entries.append(entry)
    body: dict[str, Any] = {"model_name": response.model, "model_version": response.version,
                            "outputs": entries}
    if response.id:
        body["id"] = response.id
    header = json.dumps(body, separators=(",", ":")).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(chunks), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def encode_metadata(meta: ModelMetadata) -> dict[str, Any]:
    def specs(items: list[Any]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in items]

    body: dict[str, Any] = {"name": meta.name, "versions": list(meta.versions),
                            "platform": meta.platform, "inputs": specs(meta.inputs),
                            "outputs": specs(meta.outputs)}
    if meta.rt_info:  # OVMS adds it for IR models that carry model_info
        body["rt_info"] = meta.rt_info
    return body


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": KServeError} for status in (400, 401, 404, 413, 431, 500, 503)}
#: a probe's answer is its status alone, with no body
PROBE: dict[int | str, dict[str, Any]] = {
    200: {"description": "yes (no body)", "content": None},
    503: {"description": "no (no body)", "content": None}}


def build_router(plane: DataPlane) -> APIRouter:
    router = APIRouter(responses=ERRORS)

    @router.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        meta = plane.server_metadata()
        return {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}

    @router.get("/v2/health/live", response_class=Response, responses=PROBE)
    async def live() -> Response:
        return Response(status_code=200 if plane.live() else 503)

    @router.get("/v2/health/ready", response_class=Response, responses=PROBE)
    async def ready() -> Response:
        return Response(status_code=200 if plane.ready() else 503)

    @router.get("/v2/models/{model}")
    @router.get("/v2/models/{model}/versions/{version}")
    async def model_metadata(model: str, version: str | None = None) -> dict[str, Any]:
        return encode_metadata(plane.model_metadata(model, version, "rest"))

    @router.get("/v2/models/{model}/ready")
    @router.get("/v2/models/{model}/versions/{version}/ready")
    async def model_ready(model: str, version: str | None = None) -> Response:
        ready, reason = plane.model_ready(model, version, "rest")
        body: dict[str, Any] = {"name": model, "ready": ready}
        if reason is not None:
            body["error"] = reason
        return JSONResponse(body, status_code=200 if ready else 503)

    infer_doc: dict[str, Any] = {"response_model": InferResponseBody,
                                 "openapi_extra": {"requestBody": request_body_schema()}}

    @router.post("/v2/models/{model}/infer", **infer_doc)
    @router.post("/v2/models/{model}/versions/{version}/infer", **infer_doc)
    async def infer(model: str, request: Request, version: str | None = None) -> Response:
        length = request.headers.get(HEADER_LENGTH)
        if length is not None and not length.isdigit():
            raise InvalidInput(f"{HEADER_LENGTH} must be an integer, got {length!r}")
        body = await request.body()
        response = await cancel_on_disconnect(request, plane.infer(model, lambda: decode_request(
            model, version, body, int(length) if length is not None else None), "rest"))
        if response is None:
            return Response(status_code=499)  # the client left: its run was cancelled
        return encode_response(response)

    add_config_routes(router, plane)
    return router


def add_config_routes(router: APIRouter, plane: DataPlane) -> None:
    """OVMS's config status and reload (src/http_rest_api_handler.cpp): the status document
    of every servable's versions; a reload answers it too, 201 when something was loaded or
    unloaded and 200 when nothing changed; its errors are OVMS's (the reason is in the log,
    under the error id given beside)."""
    registry = plane.registry

    @router.get("/v1/config")
    async def config_status() -> dict[str, Any]:
        return registry.status()

    @router.post("/v1/config/reload")
    async def config_reload() -> JSONResponse:
        reloader = registry.reloader
        if reloader is None:  # a registry without a reload (not started by the app)
            return JSONResponse(registry.status())
        result = await reloader.reload(on_demand=True)
        if result.missing:
            return JSONResponse({"error": "Config file not found or cannot open.",
                                 "error_id": result.error_id}, status_code=500)
        if not result.ok:
            body: dict[str, Any] = {"error": "Reloading config file failed. Check server logs "
                                    "for more info."}
            if result.error_id:  # the config file's
                body["error_id"] = result.error_id
            if result.errors:  # each servable that did not load, with its error id
                body["servables"] = result.errors
            return JSONResponse(body, status_code=412 if result.invalid else 500)
        return JSONResponse(registry.status(), status_code=201 if result.reloaded else 200)
