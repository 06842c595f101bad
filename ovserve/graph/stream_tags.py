"""What a graph-level stream carries, by its tag, as OVMS decides it
(src/mediapipe_internal/mediapipe_utils.cpp: the packet type is named by the tag's prefix).

Inside ovserve every tensor packet is a ``pyovms.Tensor``: OVMS's tensor kinds (OVMS_PY_TENSOR,
OVTENSOR, TENSOR, TFTENSOR, TFLITE_TENSOR and untagged streams) differ only in the tag. IMAGE is
a tensor too, checked as OVMS checks an image (HWC pixels in raw contents). REQUEST / RESPONSE
streams carry a whole KServe request or response to OVMS's C++ calculators; ovserve has no node
that takes them, so a graph using them is refused at load.
"""

from __future__ import annotations

from enum import Enum

from ovserve.protocol.embeddings import EMBED_REQUEST_TAG, EMBED_RESPONSE_TAG
from ovserve.protocol.generation import REQUEST_TAG, RESPONSE_TAG


class StreamKind(Enum):
    TENSOR = "tensor"
    IMAGE = "image"
    GENERATION = "generation request or chunk"  # OpenAI completions and chat
    EMBEDDING = "embedding request or result"  # OpenAI embeddings
    KSERVE_MESSAGE = "whole KServe request or response"


#: Exact tags first (an embeddings REQUEST_PAYLOAD is not a KServe REQUEST), then prefixes.
_EXACT = {
    REQUEST_TAG: StreamKind.GENERATION, RESPONSE_TAG: StreamKind.GENERATION,
    EMBED_REQUEST_TAG: StreamKind.EMBEDDING, EMBED_RESPONSE_TAG: StreamKind.EMBEDDING,
}
_PREFIXES = (
    ("OVMS_PY_TENSOR", StreamKind.TENSOR), ("OVTENSOR", StreamKind.TENSOR),
    ("TFLITE_TENSOR", StreamKind.TENSOR), ("TFTENSOR", StreamKind.TENSOR),
    ("TENSOR", StreamKind.TENSOR), ("IMAGE", StreamKind.IMAGE),
    (REQUEST_TAG, StreamKind.GENERATION), (RESPONSE_TAG, StreamKind.GENERATION),
    ("REQUEST", StreamKind.KSERVE_MESSAGE), ("RESPONSE", StreamKind.KSERVE_MESSAGE),
)
KNOWN_PREFIXES = tuple(prefix for prefix, _ in _PREFIXES) + tuple(_EXACT)


def stream_kind(tag: str) -> StreamKind | None:
    """What a graph stream with ``tag`` carries; None for a tag OVMS does not know."""
    if not tag:
        return StreamKind.TENSOR
    if tag in _EXACT:
        return _EXACT[tag]
    return next((kind for prefix, kind in _PREFIXES if tag.startswith(prefix)), None)
