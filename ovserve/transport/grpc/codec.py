"""ModelInferRequest/Response <-> tensors, using the stubs tritonclient ships."""

from __future__ import annotations

from typing import Any

from tritonclient.grpc import service_pb2

from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import Tensor
from ovserve.transport import kserve

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


def request_inputs(
    servable: str, input_names: list[str], request: service_pb2.ModelInferRequest
) -> dict[str, Tensor]:
    """Decode and check a request's inputs against the servable's input names."""
    kserve.check_names(servable, input_names, [i.name for i in request.inputs])
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"servable {servable}: raw_input_contents has {len(raw)} entries for "
            f"{len(request.inputs)} inputs"
        )
    tensors: dict[str, Tensor] = {}
    for index, tensor in enumerate(request.inputs):
        shape = list(tensor.shape)
        if raw:
            tensors[tensor.name] = kserve.tensor_from_raw(
                servable, tensor.name, tensor.datatype, shape, raw[index])
            continue
        kserve.check_header(servable, tensor.name, tensor.datatype, shape)
        field = CONTENTS_FIELD.get(tensor.datatype)
        if field is None:
            raise InvalidInput(
                f"servable {servable}: input {tensor.name!r}: {tensor.datatype} has no typed "
                "contents; send it in raw_input_contents"
            )
        values = list(getattr(tensor.contents, field))
        tensors[tensor.name] = kserve.tensor_from_values(
            servable, tensor.name, tensor.datatype, shape, values)
    return tensors


def infer_response(
    servable: str, request_id: str, outputs: dict[str, Tensor], timestamp: int | None = None
) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(model_name=servable, model_version="1",
                                              id=request_id)
    for name, tensor in outputs.items():
        response.outputs.add(name=name, datatype=tensor.datatype, shape=list(tensor.shape))
        response.raw_output_contents.append(kserve.output_raw(tensor))
    if timestamp is not None:
        response.parameters[kserve.TIMESTAMP_PARAMETER].int64_param = timestamp
    return response
