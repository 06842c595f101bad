"""KServe v2 REST: health, metadata and ``infer`` with JSON or the binary tensor extension."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ovserve import __version__
from ovserve.errors import InvalidInput, OvserveError, ServableNotReady
from ovserve.protocol.tensor import Tensor
from ovserve.serving.registry import Registry
from ovserve.transport import kserve
from ovserve.transport.errors import shape_of
from ovserve.transport.metrics import Metrics
from ovserve.transport.state import EXTENSIONS, ServerState

HEADER_LENGTH = "Inference-Header-Content-Length"


def error_response(exc: OvserveError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=shape_of(exc).http_status)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise InvalidInput(f"malformed JSON request body{where}: {exc}") from exc


def decode_request(
    servable: str, input_names: list[str], body: bytes, header_length: int | None
) -> tuple[dict[str, Tensor], dict[str, Any], list[dict[str, Any]]]:
    """Body -> (inputs, request parameters, requested outputs)."""
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes")
        header, binary = _parse_json(body[:header_length]), body[header_length:]
    else:
        header, binary = _parse_json(body), b""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    specs = header["inputs"]
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput("each entry of 'inputs' needs a 'name'")
    kserve.check_names(servable, input_names, [s["name"] for s in specs])
    tensors: dict[str, Tensor] = {}
    offset = 0
    for spec in specs:
        name = spec["name"]
        datatype, shape = spec.get("datatype"), spec.get("shape")
        if not isinstance(datatype, str):
            raise InvalidInput(f"servable {servable}: input {name!r}: 'datatype' is required")
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise InvalidInput(
                f"servable {servable}: input {name!r}: 'shape' must be a list of integers")
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidInput(
                    f"servable {servable}: input {name!r}: binary_data_size {size} does not "
                    f"fit the {len(binary) - offset} binary bytes left in the body")
            tensors[name] = kserve.tensor_from_raw(
                servable, name, datatype, shape, binary[offset:offset + size])
            offset += size
        elif "data" in spec:
            tensors[name] = kserve.tensor_from_values(servable, name, datatype, shape,
                                                      spec["data"])
        else:
            raise InvalidInput(f"servable {servable}: input {name!r} has no 'data'")
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} binary bytes after the last input")
    outputs = header.get("outputs") or []
    return tensors, header.get("parameters") or {}, outputs


def encode_response(
    servable: str, request_id: str | None, outputs: dict[str, Tensor],
    requested: list[dict[str, Any]], parameters: dict[str, Any],
) -> Response:
    binary_all = bool(parameters.get("binary_data_output"))
    wanted = {o.get("name"): o for o in requested if isinstance(o, dict)}
    unknown = [n for n in wanted if n not in outputs]
    if unknown:
        raise InvalidInput(
            f"servable {servable} has no output {unknown[0]!r} (outputs: {', '.join(outputs)})")
    chunks: list[bytes] = []
    entries = []
    for name, tensor in outputs.items():
        if wanted and name not in wanted:
            continue
        entry: dict[str, Any] = {"name": name, "datatype": tensor.datatype,
                                 "shape": list(tensor.shape)}
        options = (wanted.get(name) or {}).get("parameters") or {}
        if options.get("binary_data", binary_all):
            raw = kserve.output_raw(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = kserve.output_values(tensor)
        entries.append(entry)
    body: dict[str, Any] = {"model_name": servable, "model_version": "1", "outputs": entries}
    if request_id:
        body["id"] = request_id
    header = json.dumps(body, separators=(",", ":")).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(chunks), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def build_router(registry: Registry, metrics: Metrics, state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "ovserve", "version": __version__, "extensions": EXTENSIONS}

    @router.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @router.get("/v2/health/ready")
    async def ready() -> Response:
        return Response(status_code=200 if state.ready else 503)

    @router.get("/v2/models/{model}")
    @router.get("/v2/models/{model}/versions/{version}")
    async def model_metadata(model: str, version: str | None = None) -> Response:
        try:
            servable, _ = registry.resolve(model, llm=False)
        except OvserveError as exc:
            return error_response(exc)
        return JSONResponse(kserve.metadata(model, servable.graph.input_names,
                                            servable.graph.output_names))

    @router.get("/v2/models/{model}/ready")
    @router.get("/v2/models/{model}/versions/{version}/ready")
    async def model_ready(model: str, version: str | None = None) -> Response:
        try:
            ready = state.servable_ready(model)
        except ServableNotReady as exc:
            return JSONResponse({"name": model, "ready": False, "error": str(exc)},
                                status_code=503)
        except OvserveError as exc:
            return error_response(exc)
        return JSONResponse({"name": model, "ready": ready}, status_code=200 if ready else 503)

    @router.post("/v2/models/{model}/infer")
    @router.post("/v2/models/{model}/versions/{version}/infer")
    async def infer(model: str, request: Request, version: str | None = None) -> Response:
        try:
            with metrics.request(model, "rest"):
                servable, adapter = registry.resolve(model, llm=False)
                length = request.headers.get(HEADER_LENGTH)
                if length is not None and not length.isdigit():
                    raise InvalidInput(f"{HEADER_LENGTH} must be an integer, got {length!r}")
                inputs, params, requested = decode_request(
                    servable.name, servable.graph.input_names, await request.body(),
                    int(length) if length is not None else None)
                outputs = await servable.infer(
                    inputs, side_packets=kserve.side_packets(params),
                    timestamp=params.get(kserve.TIMESTAMP_PARAMETER), adapter=adapter)
                return encode_response(model, None, outputs, requested, params)
        except OvserveError as exc:
            return error_response(exc)

    return router
