#!/usr/bin/env python3
"""Side by side: 8 concurrent streams through ovserve vs the raw openvino-genai engine.

(a) raw: a ContinuousBatchingPipeline in this process, all requests added at once, stepped
    until done (the ceiling);
(b) ovserve: a real server on servables/servable_stream, one tritonclient ModelStreamInfer
    client per request, in threads.

Both use the same distinct prompts (a nonce per round defeats prefix caching), greedy
decoding and the same max tokens. Rounds alternate a, b, a, b, ... and the report gives
medians and the ratio. Writes benchmarks/results/stream_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.transport.server import start_server  # noqa: E402

TOPICS = ["the Moon", "volcanoes", "honey bees", "the Roman Empire", "black holes",
          "penguins", "the printing press", "rainforests", "jazz", "glaciers", "chess",
          "the Nile", "electric cars", "coral reefs", "the telescope", "tea"]


def prompts_for(round_: int, n: int) -> list[str]:
    return [f"({round_}-{i}) Write a detailed essay about {TOPICS[i % len(TOPICS)]}."
            for i in range(n)]


def run_raw(pipeline: Any, tokenizer: Any, prompts: list[str], max_tokens: int) -> dict[str, float]:
    import openvino_genai as ov_genai

    config = ov_genai.GenerationConfig(max_new_tokens=max_tokens)
    config.eos_token_id = pipeline.get_config().eos_token_id
    started = time.perf_counter()
    handles = []
    for i, prompt in enumerate(prompts):
        templated = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                  add_generation_prompt=True)
        handles.append(pipeline.add_request(i, templated, config))
    tokens = 0
    first: float | None = None
    while pipeline.has_non_finished_requests():
        pipeline.step()
        for handle in handles:
            if handle.can_read():
                for output in handle.read().values():
                    tokens += len(output.generated_ids)
                    first = first or time.perf_counter()
    elapsed = time.perf_counter() - started
    return {"tokens": tokens, "seconds": elapsed, "tok_per_s": tokens / elapsed,
            "ttft_s": (first or started) - started}


def run_ovserve(url: str, prompts: list[str]) -> dict[str, float]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    totals: dict[int, int] = {}
    firsts: list[float] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(prompts) + 1)

    def one(i: int) -> None:
        client = grpcclient.InferenceServerClient(url)
        events: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: events.put((result, error)))
        inp = grpcclient.InferInput("pre_prompt", [1], "BYTES")
        inp.set_data_from_numpy(np.array([prompts[i].encode()], dtype=np.object_))
        barrier.wait()
        sent = time.perf_counter()
        client.async_stream_infer(model_name="python_model", inputs=[inp])
        try:
            while True:
                result, error = events.get(timeout=600)
                if error is not None:
                    errors.append(str(error))
                    return
                if result.as_numpy("completion") is not None and i not in totals:
                    totals[i] = 0
                    firsts.append(time.perf_counter() - sent)
                if result.as_numpy("token_count") is not None:
                    totals[i] = int(result.as_numpy("token_count")[0])
                if result.as_numpy("end_signal") is not None:
                    return
        finally:
            client.stop_stream()
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    tokens = sum(totals.values())
    return {"tokens": tokens, "seconds": elapsed, "tok_per_s": tokens / elapsed,
            "ttft_s": statistics.median(firsts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models/smollm2-135m-instruct")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results")
    args = parser.parse_args()

    import openvino as ov
    import openvino_genai as ov_genai

    scheduler = ov_genai.SchedulerConfig()
    scheduler.cache_size = 1
    pipeline = ov_genai.ContinuousBatchingPipeline(str(args.model), scheduler, "CPU")
    tokenizer = pipeline.get_tokenizer()
    server = start_server(REPO / "servables/servable_stream/config.json",
                          env={"OVSERVE_MAX_TOKENS": str(args.max_tokens),
                               "OVSERVE_MODEL_PATH": str(args.model)})
    try:
        # warm-up both
        run_raw(pipeline, tokenizer, prompts_for(-1, args.concurrency), args.max_tokens)
        run_ovserve(server.grpc_url, prompts_for(-2, args.concurrency))
        raw, served = [], []
        for r in range(args.rounds):
            prompts = prompts_for(r, args.concurrency)
            raw.append(run_raw(pipeline, tokenizer, prompts, args.max_tokens))
            served.append(run_ovserve(server.grpc_url, prompts))
            print(f"round {r}: raw {raw[-1]['tok_per_s']:.0f} tok/s, "
                  f"ovserve {served[-1]['tok_per_s']:.0f} tok/s", flush=True)
    finally:
        server.terminate()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    report = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "openvino": ov.__version__, "openvino_genai": ov_genai.__version__},
        "model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO)
                     else args.model),
        "concurrency": args.concurrency, "max_tokens": args.max_tokens, "rounds": args.rounds,
        "raw": raw, "ovserve_grpc_stream": served,
        "median_tok_per_s": {"raw": median(raw, "tok_per_s"),
                             "ovserve_grpc_stream": median(served, "tok_per_s")},
        "median_ttft_s": {"raw": median(raw, "ttft_s"),
                          "ovserve_grpc_stream": median(served, "ttft_s")},
    }
    ratio = report["median_tok_per_s"]["ovserve_grpc_stream"] / report["median_tok_per_s"]["raw"]
    report["ratio_ovserve_to_raw"] = ratio
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    table = (
        f"# {args.concurrency} concurrent streams, {args.max_tokens} new tokens, "
        f"{args.rounds} rounds (medians)\n\n"
        "| system | total tok/s | TTFT (s) |\n|---|---|---|\n"
        f"| raw ContinuousBatchingPipeline (one process) | "
        f"{report['median_tok_per_s']['raw']:.0f} | {report['median_ttft_s']['raw']:.3f} |\n"
        f"| ovserve gRPC ModelStreamInfer (servable_stream) | "
        f"{report['median_tok_per_s']['ovserve_grpc_stream']:.0f} | "
        f"{report['median_ttft_s']['ovserve_grpc_stream']:.3f} |\n\n"
        f"ovserve / raw throughput: **{ratio:.2f}**\n\n"
        f"Machine: {report['machine']}\n"
    )
    (args.out / "stream_throughput.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
