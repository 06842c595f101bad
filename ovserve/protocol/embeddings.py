"""Transport-neutral embedding requests and results (OpenAI ``/v1/embeddings``, KServe)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Graph stream tags of embedding graphs (OVMS's names).
EMBED_REQUEST_TAG = "REQUEST_PAYLOAD"
EMBED_RESPONSE_TAG = "RESPONSE_PAYLOAD"


@dataclass(frozen=True)
class EmbeddingRequest:
    texts: list[str]


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: np.ndarray  # [texts, dimensions], float32
    tokens: int
