"""Embeddings throughput through /v1/embeddings against the raw TextEmbeddingPipeline in the
same run, and RAG end-to-end latency (question -> streamed answer with sources).

    .venv/bin/python benchmarks/rag.py [--rounds 3]

Embeddings: 2,048 distinct sentences in requests of 32, 8 clients at once, vs the raw pipeline
embedding the same sentences in calls of 32 (its best batch) in this process; rounds alternate.
RAG: the project's README ingested into a fresh store, chat requests to the `rag` graph with 64
tokens forced, at concurrency 1 and 8: time to the first token (after retrieval) and to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.loadgen import OpenAIChatTarget, percentiles, run_level  # noqa: E402
from benchmarks.servers import start_ovserve  # noqa: E402

EMBEDDING = REPO / "models/all-minilm-l6-v2"


def sentences(n: int, salt: str) -> list[str]:
    topics = ["volcanoes", "penguins", "the Roman Empire", "jazz", "black holes", "tea"]
    return [f"Sentence {i} ({salt}) is about {topics[i % len(topics)]} and item {i * 7919 % 1009}."
            for i in range(n)]


def raw_embeddings(texts: list[str], batch: int) -> float:
    import openvino_genai as ov_genai

    config = ov_genai.TextEmbeddingPipeline.Config()
    config.pooling_type = ov_genai.TextEmbeddingPipeline.PoolingType.MEAN
    config.normalize = True
    pipeline = ov_genai.TextEmbeddingPipeline(str(EMBEDDING), "CPU", config)
    pipeline.embed_documents(texts[:batch])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        pipeline.embed_documents(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - started)


async def served_embeddings(url: str, texts: list[str], batch: int, concurrency: int) -> float:
    import aiohttp

    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    async with aiohttp.ClientSession() as session:
        async def one(chunk: list[str]) -> None:
            async with session.post(f"{url}/v1/embeddings", json={
                    "model": "all-minilm-l6-v2", "input": chunk}) as reply:
                assert reply.status == 200, await reply.text()
                await reply.read()

        await one(chunks[0])  # warm-up
        queue = list(chunks)
        started = time.perf_counter()

        async def worker() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - started)


async def rag_latency(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    """Chat requests to the RAG graph (the load generator's distinct prompts as questions)."""
    target = OpenAIChatTarget("rag", f"{url}/v1", "rag", {"ignore_eos": True})
    level = await run_level(target, concurrency, requests, 64)
    await target.close()
    ok = [r for r in level.results if r.error is None]
    return {"concurrency": concurrency, "requests": level.requests, "errors": level.errors,
            "ttft": percentiles([r.ttft for r in ok]), "e2e": percentiles([r.e2e for r in ok])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/rag.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    report: dict[str, Any] = {"embeddings": {"raw": [], "served": []}, "rag": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        graphs = {}
        for name in ("embeddings", "rag"):
            text = (REPO / f"graphs/{name}/graph.pbtxt").read_text()
            text = text.replace("../../models", str(REPO / "models"))
            text = text.replace('"../../data/chroma"', f'"{root / "store"}"')
            (root / name).mkdir()
            (root / name / "graph.pbtxt").write_text(text)
            graphs[name] = root / name
        config = root / "config.json"
        config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
            {"name": "all-minilm-l6-v2", "base_path": str(graphs["embeddings"])},
            {"name": "rag", "base_path": str(graphs["rag"])}]}))
        server = start_ovserve("ovserve", config, root / "server.log", {})
        try:
            import httpx

            reply = httpx.put(f"{server.rest_url}/v1/rag/rag/documents/README.md",
                              content=(REPO / "README.md").read_bytes(), timeout=120)
            reply.raise_for_status()
            for round_ in range(args.rounds):
                texts = sentences(2048, f"round {round_}")
                served = asyncio.run(served_embeddings(server.rest_url, texts, 32, 8))
                raw = raw_embeddings(sentences(2048, f"raw {round_}"), 32)
                report["embeddings"]["served"].append(served)
                report["embeddings"]["raw"].append(raw)
                print(f"round {round_ + 1}: served {served:.0f} sentences/s, raw {raw:.0f}",
                      flush=True)
            for concurrency in (1, 8):
                level = asyncio.run(rag_latency(server.rest_url, concurrency,
                                                max(8, 3 * concurrency)))
                report["rag"].append(level)
                print(f"rag c={concurrency}: TTFT p50 {level['ttft']['p50'] * 1e3:.0f} ms "
                      f"p99 {level['ttft']['p99'] * 1e3:.0f} ms, end-to-end p50 "
                      f"{level['e2e']['p50']:.2f} s p99 {level['e2e']['p99']:.2f} s, "
                      f"errors {level['errors']}", flush=True)
        finally:
            server.stop()
    served, raw = (sum(report["embeddings"][k]) / args.rounds for k in ("served", "raw"))
    report.update({"served_over_raw": served / raw, "load_average_before": load_before,
                   "load_average_after": os.getloadavg()})
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"embeddings: served / raw = {served / raw:.2f}; load average before {load_before}, "
          f"after {report['load_average_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
