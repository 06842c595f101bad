"""Transport-neutral rerank requests and results (Cohere's ``/v3/rerank``, vLLM's
``/v1/rerank`` and ``/score``): a query and documents in, one relevance score per document out,
in the documents' order (sorting and ``top_n`` are the front end's)."""

from __future__ import annotations

from dataclasses import dataclass

#: Graph stream tags of rerank graphs (OVMS's names, the same as embeddings graphs')
RERANK_REQUEST_TAG = "REQUEST_PAYLOAD"
RERANK_RESPONSE_TAG = "RESPONSE_PAYLOAD"


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: list[str]


@dataclass(frozen=True)
class RerankResult:
    scores: list[float]  # per document, in the request's order; 0..1 (sigmoid of the logit)
    tokens: int  # the (query, document) pairs' tokens
