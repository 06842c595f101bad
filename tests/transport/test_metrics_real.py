"""Metrics on the real model (SmolLM2 through openvino-genai's engine process): 6 requests of 24
forced tokens sent at once to an engine that runs 2 at a time (max_num_seqs 2, no dynamic
split-fuse). The counts
follow from those numbers; running never exceeds 2 and requests are seen waiting, as the
engine process reports each step's newly scheduled requests; OVMS's names (turned on by
config.json's monitoring block) count the V3 calls. No verdict reads the text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.engine.lora_files import write_adapter
from tests.transport.metrics_text import label_sets, value
from tests.transport.server import Server, start_server

MODEL = "smollm2-135m-instruct"  # the engine's name: its model folder's
VLLM = {"model_name": MODEL}
COUNT, TOKENS = 6, 24


def llm_graph(model_dir: Path) -> str:
    graph = (REPO / "graphs/llm/graph.pbtxt").read_text()
    return graph.replace("../../models/smollm2-135m-instruct", str(model_dir))


@pytest.fixture(scope="module")
def server(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("metrics_real")
    graph = llm_graph(default_model_dir)
    # openvino-genai honours max_num_seqs without dynamic split-fuse (with it, it batches all)
    graph = graph.replace("max_num_seqs: 256", "max_num_seqs: 2, dynamic_split_fuse: false")
    assert "max_num_seqs: 2," in graph
    (root / "llm").mkdir()
    (root / "llm/graph.pbtxt").write_text(graph)
    config = root / "config.json"
    config.write_text(json.dumps({
        "mediapipe_config_list": [{"name": "llm", "base_path": "llm"}],
        "monitoring": {"metrics": {"enable": True}}}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


def test_known_counts_and_queueing_on_the_real_engine(server: Server) -> None:
    seen: list[tuple[float, float]] = []  # (running, waiting) while the requests run
    done = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=server.rest_url) as http:
            while not done.is_set():
                text = http.get("/metrics").text
                seen.append((value(text, "vllm:num_requests_running", **VLLM),
                             value(text, "vllm:num_requests_waiting", **VLLM)))
                time.sleep(0.01)

    def one(index: int) -> int:
        body = {"model": "llm", "prompt": f"Request {index}: count to fifty.",
                "max_tokens": TOKENS, "ignore_eos": True, "temperature": 0}
        reply = httpx.post(f"{server.rest_url}/v3/completions", json=body, timeout=300)
        assert reply.status_code == 200, reply.text
        usage = reply.json()["usage"]
        assert usage["completion_tokens"] == TOKENS
        return int(usage["prompt_tokens"])

    before = httpx.get(f"{server.rest_url}/metrics").text
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(COUNT) as pool:
            prompts = list(pool.map(one, range(COUNT)))
    finally:
        done.set()
        watcher.join()
    after = httpx.get(f"{server.rest_url}/metrics").text

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert delta("vllm:request_success_total", finished_reason="length", **VLLM) == COUNT
    assert delta("vllm:generation_tokens_total", **VLLM) == COUNT * TOKENS
    assert delta("vllm:request_generation_tokens_sum", **VLLM) == COUNT * TOKENS
    assert delta("vllm:prompt_tokens_total", **VLLM) == sum(prompts)
    assert delta("vllm:request_prompt_tokens_sum", **VLLM) == sum(prompts)
    for histogram in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                      "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                      "vllm:request_decode_time_seconds"):
        assert delta(f"{histogram}_count", **VLLM) == COUNT, histogram
    # one interval per step after the first token; a step whose text ends mid-character sends
    # its token with the next step's, so there can be fewer, never more
    assert 0 < delta("vllm:inter_token_latency_seconds_count", **VLLM) <= COUNT * (TOKENS - 1)
    # 2 run at a time: the others waited, and the engine never ran more than 2
    assert max(running for running, _ in seen) <= 2
    assert max(waiting for _, waiting in seen) >= 1
    assert delta("vllm:request_queue_time_seconds_sum", **VLLM) > 0
    assert value(after, "vllm:num_requests_running", **VLLM) == 0
    assert value(after, "vllm:num_requests_waiting", **VLLM) == 0
    # e2e covers queue, prefill and decode
    assert delta("vllm:e2e_request_latency_seconds_sum", **VLLM) >= (
        delta("vllm:request_queue_time_seconds_sum", **VLLM)
        + delta("vllm:request_decode_time_seconds_sum", **VLLM))
    # OVMS's names for the graph's V3 calls, on by config.json's monitoring block
    v3 = {"name": "llm", "api": "V3", "interface": "REST", "method": "Unary"}
    assert delta("ovms_requests_accepted", **v3) == COUNT
    assert delta("ovms_responses", **v3) == COUNT
    assert delta("ovms_graph_error", **v3) == 0
    assert delta("ovms_graph_processing_time_us_count", name="llm", method="Unary") == COUNT
    assert delta("ovserve_requests_total", servable="llm", interface="openai") == COUNT


def test_lora_requests_info_names_the_adapter_running(default_model_dir: Path,
                                                      tmp_path: Path) -> None:
    """A streamed request on adapter "alpha" (PEFT files with random matrices): while it runs,
    vllm:lora_requests_info says alpha runs, with the server's --max_loras."""
    for seed, name in enumerate(("alpha", "beta")):
        write_adapter(tmp_path / "loras" / name, seed=seed)
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm/graph.pbtxt").write_text(llm_graph(default_model_dir))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mediapipe_config_list": [{"name": "llm",
                                                             "base_path": "llm"}]}))
    server = start_server(config, "--lora_dir", str(tmp_path / "loras"), "--max_loras", "2")
    try:
        def info() -> list[dict[str, str]]:
            text = httpx.get(f"{server.rest_url}/metrics").text
            return label_sets(text, "vllm:lora_requests_info")

        assert info() == [{"max_lora": "2", "running_lora_adapters": "",
                           "waiting_lora_adapters": ""}]
        body = {"model": "alpha", "prompt": "Tell a long story.", "max_tokens": 2000,
                "ignore_eos": True, "stream": True}
        seen: list[dict[str, str]] = []
        with httpx.stream("POST", f"{server.rest_url}/v1/completions", json=body,
                          timeout=300) as reply:
            assert reply.status_code == 200
            for line in reply.iter_lines():  # reading it keeps it running
                if line.startswith("data:"):
                    seen = info()
                    if seen[0]["running_lora_adapters"] == "alpha":
                        break
        assert seen == [{"max_lora": "2", "running_lora_adapters": "alpha",
                         "waiting_lora_adapters": ""}]
    finally:
        assert server.terminate() == 0
