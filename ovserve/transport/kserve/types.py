"""The KServe v2 data plane's own request and response types: what the REST and gRPC codecs
decode into and encode from (tensors already checked against their datatype and shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ovserve.errors import InvalidInput, OvserveError
from ovserve.protocol.tensor import Tensor

#: Request parameter that sets a packet's timestamp; responses carry it too.
TIMESTAMP_PARAMETER = "OVMS_MP_TIMESTAMP"
#: Graph inputs carry any datatype and shape; metadata says so as OVMS does.
UNTYPED = "INVALID"
EXTENSIONS = ["model_repository", "binary_tensor_data", "parameters", "streaming"]


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for, with its parameters (REST: ``binary_data``)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferRequest:
    model: str
    inputs: dict[str, Tensor]
    id: str = ""
    version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] = field(default_factory=list)

    @property
    def timestamp(self) -> int | None:
        value = self.parameters.get(TIMESTAMP_PARAMETER)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"parameter {TIMESTAMP_PARAMETER} must be a non-negative "
                               f"integer, got {value!r}"[:200])
        return value

    def side_packets(self) -> dict[str, Any]:
        """Request parameters that become graph side packets (OVMS_MP_TIMESTAMP excluded)."""
        return {k: v for k, v in self.parameters.items() if k != TIMESTAMP_PARAMETER}


@dataclass(frozen=True)
class RejectedRequest:
    """A request of a stream that could not be decoded: answered in-band with its own id."""

    model: str
    id: str
    error: OvserveError


@dataclass
class InferResponse:
    model: str
    outputs: dict[str, Tensor]
    id: str = ""
    version: str = "1"
    timestamp: int | None = None
    #: the request answered, for the codec's encoding options (REST ``binary_data``)
    request: InferRequest | None = None


@dataclass(frozen=True)
class StreamError:
    """An in-band error on a stream: the stream stays open."""

    model: str
    id: str
    error: OvserveError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str = UNTYPED
    shape: tuple[int, ...] = (-1,)


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    versions: tuple[str, ...] = ("1",)
    platform: str = "OpenVINO"
    #: a plain model's ``model_info`` runtime info (REST only: gRPC's message has no field)
    rt_info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...] = tuple(EXTENSIONS)
