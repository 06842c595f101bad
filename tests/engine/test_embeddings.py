"""The embedding engine on the built-in model: vectors as sentence-transformers gives them on
the same checkpoint, token counts, length limits, and concurrent requests batched together."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
from ovserve.errors import InvalidInput
from tests.conftest import plugin_config

TEXTS = ["What is the theory of relativity?", "ovserve serves LLMs on OpenVINO.",
         "Grüße aus München, 東京 and 🚀 emoji", "def f(x):\n    return x * 2  # code",
         "short"]


@pytest.fixture(scope="module")
def engine(embedding_model_dir: Path) -> Iterator[EmbeddingEngine]:
    engine = EmbeddingEngine(EmbeddingConfig(embedding_model_dir, plugin_config=plugin_config()))
    yield engine
    engine.close()


def test_vectors_match_sentence_transformers(engine: EmbeddingEngine) -> None:
    """Cosine >= 0.99 with the reference, in f32 or bf16 (different texts: under 0.2)."""
    from sentence_transformers import SentenceTransformer

    from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_EMBEDDING_MODEL
    from ovserve.toolchain.gguf_source import fetch_model_dir

    reference = SentenceTransformer(str(fetch_model_dir(BUILTIN_MODELS[DEFAULT_EMBEDDING_MODEL])),
                                    device="cpu").encode(TEXTS, normalize_embeddings=True)
    ours = engine.embed(TEXTS).vectors
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    cosines = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in zip(ours, reference, strict=True)]
    assert min(cosines) >= 0.99, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-3)  # normalized


def test_token_counts_and_length_limit(engine: EmbeddingEngine, embedding_model_dir: Path
                                       ) -> None:
    import openvino_genai as ov_genai

    tokenizer = ov_genai.Tokenizer(str(embedding_model_dir))
    expected = sum(len(tokenizer.encode(t).input_ids.data[0]) for t in TEXTS)
    assert engine.embed(TEXTS).tokens == expected
    long = "word " * 700
    with pytest.raises(InvalidInput, match=r"input\[1\]: \d+ tokens is more than the model's 512"):
        engine.embed(["fine", long])
    cutting = EmbeddingEngine(EmbeddingConfig(embedding_model_dir, truncate=True,
                                              plugin_config=plugin_config()))
    try:
        result = cutting.embed([long])
        assert result.tokens == 512 and result.vectors.shape == (1, 384)
    finally:
        cutting.close()
    for bad in ([], [""], ["ok", "   "]):
        with pytest.raises(InvalidInput, match="input"):
            engine.embed(bad)


def test_concurrent_requests_get_their_own_rows(engine: EmbeddingEngine) -> None:
    """Each row is its own text's vector: alone and batched with others (padded) they agree
    to the kernels' noise (cosine >= 0.999 even in bf16); different texts of TEXTS are
    under 0.2."""
    alone = {t: engine.embed([t]).vectors[0] for t in TEXTS}
    requests = [[TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]] for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(engine.embed, requests))
    for texts, result in zip(requests, results, strict=True):
        for text, vector in zip(texts, result.vectors, strict=True):
            assert float(np.dot(vector, alone[text])) >= 0.999
    assert engine.total_requests >= 40 + len(TEXTS)


def test_a_server_wide_llm_property_does_not_break_an_embedding_model(
        embedding_model_dir: Path) -> None:
    """--plugin_config '{"CPU": {"prompt_lookup": true}}' reaches every CPU engine; the CPU
    plugin would refuse it in an embedding model."""
    engine = EmbeddingEngine(EmbeddingConfig(
        embedding_model_dir, plugin_config=plugin_config({"prompt_lookup": True})))
    assert engine.dimensions == 384
