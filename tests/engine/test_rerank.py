"""The rerank engine on the built-in reranker (openvino-genai's TextRerankPipeline): a score
per document in the documents' order, the same pair scoring the same in any batch, the limits
as InvalidInput naming the field, and the engine registry sharing one engine per model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ovserve.engine.rerank import RerankConfig, RerankEngine
from ovserve.errors import EngineUnavailable, InvalidInput
from tests.conftest import engine_registry, plugin_config

DOCS = ["Penguins keep their eggs warm on their feet.", "Paris is the capital of France.",
        "Volcanoes erupt lava."]


@pytest.fixture(scope="module")
def engine(reranker_model_dir: Path) -> Iterator[RerankEngine]:
    engine = RerankEngine(RerankConfig(reranker_model_dir, max_documents=4,
                                         plugin_config=plugin_config()))
    yield engine
    engine.close()


def test_scores_in_document_order(engine: RerankEngine) -> None:
    result = engine.rerank("penguin eggs", DOCS)
    assert len(result.scores) == len(DOCS) and all(0 <= s <= 1 for s in result.scores)
    assert result.tokens > len(DOCS) * 4
    reversed_ = engine.rerank("penguin eggs", DOCS[::-1]).scores[::-1]
    assert reversed_ == pytest.approx(result.scores, abs=2e-4)  # the pair, not the position
    alone = engine.rerank("penguin eggs", [DOCS[1]]).scores[0]
    assert alone == pytest.approx(result.scores[1], abs=2e-4)  # another batch, other padding
    assert engine.rerank("penguin eggs", []).scores == []


@pytest.mark.parametrize(("query", "documents", "param"), [
    ("", DOCS, "query"), ("q", ["x"] * 5, "documents"), ("q", ["x", 3], "documents")])
def test_bad_input(engine: RerankEngine, query: str, documents: list[str], param: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        engine.rerank(query, documents)
    assert raised.value.param == param


def test_registry_shares_and_closes(reranker_model_dir: Path) -> None:
    registry = engine_registry()
    first = registry.acquire_rerank("a", reranker_model_dir)
    assert registry.acquire_rerank("b", str(reranker_model_dir) + "/") is first
    registry.release("a")
    assert first.ready
    registry.release("b")
    assert not first.ready
    with pytest.raises(EngineUnavailable):
        first.rerank("q", DOCS)
