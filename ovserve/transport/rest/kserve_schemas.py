"""Pydantic models of KServe v2's JSON bodies, for /openapi.json only: the infer route reads
its body itself (the binary tensor extension appends raw bytes after the JSON header), so these
describe the JSON form without being the parser."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: this input's bytes follow the JSON header")
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true")


class InferRequestBody(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="side packets of the graph; OVMS_MP_TIMESTAMP sets the timestamp")
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class KServeError(BaseModel):
    error: str


def request_body_schema() -> dict[str, Any]:
    """The infer route's requestBody, its models' schemas referenced from components."""
    return {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/InferRequestBody"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                     "description": "JSON header, then raw tensors; the header's "
                                     "length in Inference-Header-Content-Length"}}}


def component_schemas() -> dict[str, Any]:
    """InferRequestBody and the models it uses, for the schema's components."""
    schema = InferRequestBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"InferRequestBody": schema, **defs}
