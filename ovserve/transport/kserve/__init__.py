"""KServe v2: the data plane both transports call, its types, and tensor conversions."""

from ovserve.transport.kserve.dataplane import DataPlane
from ovserve.transport.kserve.types import (
    InferRequest,
    InferResponse,
    RejectedRequest,
    RequestedOutput,
    StreamError,
)

__all__ = ["DataPlane", "InferRequest", "InferResponse", "RejectedRequest", "RequestedOutput",
           "StreamError"]
