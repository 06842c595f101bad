"""ModelInferRequest/Response <-> the data plane's types, using the stubs tritonclient ships."""

from __future__ import annotations

from typing import Any

from tritonclient.grpc import service_pb2

from ovserve.errors import InvalidInput, OvserveError
from ovserve.protocol.tensor import Tensor
from ovserve.transport.kserve import tensors
from ovserve.transport.kserve.types import (
    TIMESTAMP_PARAMETER,
    InferRequest,
    InferResponse,
    ModelMetadata,
    RejectedRequest,
    RequestedOutput,
)

# Typed ``contents`` field per datatype (FP16 has none: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def parameters(params: Any) -> dict[str, Any]:
    """InferParameter map -> plain values (bool, int or str)."""
    out: dict[str, Any] = {}
    for key, param in params.items():
        kind = param.WhichOneof("parameter_choice")
        if kind is not None:
            out[key] = getattr(param, kind)
    return out


def _inputs(model: str, request: service_pb2.ModelInferRequest) -> dict[str, Tensor]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"servable {model}: raw_input_contents has {len(raw)} entries for "
            f"{len(request.inputs)} inputs"
        )
    decoded: dict[str, Tensor] = {}
    for index, tensor in enumerate(request.inputs):
        if tensor.name in decoded:
            raise InvalidInput(f"servable {model}: input {tensor.name!r} given twice")
        shape = list(tensor.shape)
        if raw and tensor.HasField("contents"):
            raise InvalidInput(f"servable {model}: input {tensor.name!r} has typed contents "
                               "beside raw_input_contents; send one or the other")
        if raw:
            decoded[tensor.name] = tensors.tensor_from_raw(
                model, tensor.name, tensor.datatype, shape, raw[index])
            continue
        tensors.check_header(model, tensor.name, tensor.datatype, shape)
        field = CONTENTS_FIELD.get(tensor.datatype)
        if field is None:
            raise InvalidInput(
                f"servable {model}: input {tensor.name!r}: {tensor.datatype} has no typed "
                "contents; send it in raw_input_contents"
            )
        values = list(getattr(tensor.contents, field))
        decoded[tensor.name] = tensors.tensor_from_values(
            model, tensor.name, tensor.datatype, shape, values)
    return decoded


def decode_request(request: service_pb2.ModelInferRequest) -> InferRequest:
    model = request.model_name
    return InferRequest(
        model, _inputs(model, request), id=request.id, version=request.model_version or None,
        parameters=parameters(request.parameters),
        outputs=[RequestedOutput(o.name, parameters(o.parameters)) for o in request.outputs])


def decode_stream_request(request: service_pb2.ModelInferRequest
                          ) -> InferRequest | RejectedRequest:
    """A stream's request; one that does not decode is rejected on its own (in-band)."""
    try:
        return decode_request(request)
    except OvserveError as exc:
        return RejectedRequest(request.model_name, request.id, exc)


def encode_response(response: InferResponse) -> service_pb2.ModelInferResponse:
    message = service_pb2.ModelInferResponse(model_name=response.model,
                                             model_version=response.version, id=response.id)
    for name, tensor in response.outputs.items():
        message.outputs.add(name=name, datatype=tensor.datatype, shape=list(tensor.shape))
        message.raw_output_contents.append(tensors.output_raw(tensor))
    if response.timestamp is not None:
        message.parameters[TIMESTAMP_PARAMETER].int64_param = response.timestamp
    return message


def encode_metadata(meta: ModelMetadata) -> service_pb2.ModelMetadataResponse:
    message = service_pb2.ModelMetadataResponse(name=meta.name, versions=list(meta.versions),
                                                platform=meta.platform)
    for kind, specs in (("inputs", meta.inputs), ("outputs", meta.outputs)):
        for spec in specs:
            getattr(message, kind).add(name=spec.name, datatype=spec.datatype,
                                       shape=list(spec.shape))
    return message
