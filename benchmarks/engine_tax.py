"""The per-token tax of ovserve's engine process: CPU milliseconds per output token of the raw
openvino-genai pipeline against ovserve's engine (issue 29, item 2).

CPU time per token (user + system of every thread, from /proc) hardly depends on what else
runs on the machine, where wall-clock tokens/s does; so this compares CPU, in interleaved
rounds. Systems, each a closed loop of ``c`` streams, 128 tokens (ignore_eos), greedy,
distinct prompts (benchmarks.loadgen.distinct_prompt), one warm-up request per level:

- ``raw``: a ContinuousBatchingPipeline stepped in a process of its own (``--raw-worker``),
  built as ovserve builds it (EngineConfig's scheduler and properties), requests added as
  token ids, outputs read from the handles, no detokenization: the engine's floor.
- ``engine``: ovserve's OpenVINOEngine driven through its Python API from this process (one
  thread per stream, ``submit(prepare(...)).deltas()``). ``engine`` is the engine process,
  ``server`` this process (tokenization, the receiver thread, the readers).
- ``sse`` (``--server``): ``python -m ovserve`` serving only the LLM graph, streamed chat
  completions from this process (aiohttp). ``server`` is the serving process, ``engine`` its
  engine process; this process (the client) is not counted.

    .venv/bin/python -m benchmarks.engine_tax [--server] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.cpu import children, own_seconds, process_seconds
from benchmarks.loadgen import distinct_prompt

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "smollm2-135m-instruct"


# -- the raw pipeline, in a process of its own ---------------------------------------------------

def thread_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread (the main thread: ``tid`` == ``pid``)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_worker(model: Path) -> None:
    """Commands on stdin (one JSON line each: concurrency, requests, tokens), one JSON line of
    results on stdout per command."""
    import numpy as np
    import openvino as ov
    import openvino_genai as ov_genai

    from ovserve.engine import EngineConfig
    from ovserve.engine.process import pipeline_properties, scheduler_config

    config = EngineConfig(model)
    pipeline = ov_genai.ContinuousBatchingPipeline(
        str(model), scheduler_config(config), config.device, pipeline_properties(config))
    tokenizer = pipeline.get_tokenizer()
    eos = pipeline.get_config().eos_token_id

    def prompt_ids() -> Any:
        text = tokenizer.apply_chat_template([{"role": "user", "content": distinct_prompt()}],
                                             add_generation_prompt=True)
        ids = tokenizer.encode(text, add_special_tokens=False).input_ids.data
        return ov.Tensor(np.array(ids, dtype=np.int64))

    ids = iter(range(1 << 30))

    def run(concurrency: int, requests: int, tokens: int) -> tuple[int, float, float, float]:
        prompts = [prompt_ids() for _ in range(requests)]
        active: dict[int, Any] = {}
        produced = 0
        pid = os.getpid()
        cpu, main, wall = own_seconds(), thread_seconds(pid, pid), time.perf_counter()
        while prompts or active:
            while prompts and len(active) < concurrency:
                generation = ov_genai.GenerationConfig()
                generation.max_new_tokens = tokens
                generation.eos_token_id = eos
                generation.ignore_eos = True
                request_id = next(ids)
                active[request_id] = pipeline.add_request(request_id, prompts.pop(), generation)
            pipeline.step()
            for request_id, handle in list(active.items()):
                if handle.can_read():
                    produced += sum(len(o.generated_ids) for o in handle.read().values())
                if handle.get_status().name != "RUNNING":
                    del active[request_id]
        return (produced, own_seconds() - cpu, thread_seconds(pid, pid) - main,
                time.perf_counter() - wall)

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        run(1, 1, 16)  # warm-up
        tokens, cpu, main, wall = run(command["concurrency"], command["requests"],
                                      command["tokens"])
        print(json.dumps({"tokens": tokens, "engine": cpu, "engine_main": main, "wall": wall}),
              flush=True)


class Raw:
    name = "raw"

    def __init__(self, model: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.engine_tax", "--raw-worker", "--model",
             str(model)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.process.stdout is not None
        json.loads(self.process.stdout.readline())

    def run(self, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"concurrency": concurrency, "requests": requests,
                                             "tokens": tokens}) + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# -- ovserve's engine through its Python API -------------------------------------------------------

class Engine:
    name = "engine"

    def __init__(self, model: Path) -> None:
        from ovserve.engine import EngineConfig
        from ovserve.engine.client import OpenVINOEngine

        self.engine = OpenVINOEngine(EngineConfig(model))

    @property
    def pid(self) -> int:
        return self.engine.pid

    def _one(self, tokens: int) -> int:
        from ovserve.engine import SamplingParams

        prepared = self.engine.prepare(distinct_prompt(), SamplingParams(
            max_tokens=tokens, temperature=0, ignore_eos=True))
        produced = 0
        for delta in self.engine.submit(prepared).deltas():
            produced += len(delta.token_ids)
        return produced

    def run(self, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        self._one(16)  # warm-up
        remaining = iter(range(requests))
        counts: list[int] = []

        def stream() -> None:
            while next(remaining, None) is not None:
                counts.append(self._one(tokens))

        pid = self.pid
        engine, main, server = process_seconds(pid), thread_seconds(pid, pid), own_seconds()
        wall = time.perf_counter()
        threads = [threading.Thread(target=stream) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"tokens": sum(counts), "wall": time.perf_counter() - wall,
                "engine": process_seconds(pid) - engine,
                "engine_main": thread_seconds(pid, pid) - main, "server": own_seconds() - server}

    def close(self) -> None:
        self.engine.close()


# -- ovserve's server over SSE ------------------------------------------------------------------

class Server:
    name = "sse"

    def __init__(self, logs: Path) -> None:
        """Serves graphs/llm (the built-in model) alone."""
        from benchmarks.servers import start_ovserve

        logs.mkdir(parents=True, exist_ok=True)
        config = logs / "config.json"
        config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
            {"name": MODEL.name, "base_path": str(REPO / "graphs" / "llm")}]}))
        self.server = start_ovserve("ovserve", config, logs / "ovserve.log", {})

    def run(self, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        return asyncio.run(self._run(concurrency, requests, tokens))

    async def _run(self, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        from benchmarks.loadgen import OpenAIChatTarget

        target = OpenAIChatTarget("sse", f"{self.server.rest_url}/v1", MODEL.name,
                                  extra={"ignore_eos": True})
        try:
            await target.request(distinct_prompt(), 16)  # warm-up
            remaining = iter(range(requests))
            counts: list[int] = []

            async def stream() -> None:
                while next(remaining, None) is not None:
                    result = await target.request(distinct_prompt(), tokens)
                    if result.error:
                        raise RuntimeError(result.error)
                    counts.append(result.tokens)

            pid = self.server.process.pid
            (child,) = children(pid)  # its engine process
            server, engine = process_seconds(pid), process_seconds(child)
            main = thread_seconds(child, child)
            wall = time.perf_counter()
            await asyncio.gather(*(stream() for _ in range(concurrency)))
            return {"tokens": sum(counts), "wall": time.perf_counter() - wall,
                    "engine": process_seconds(child) - engine,
                    "engine_main": thread_seconds(child, child) - main,
                    "server": process_seconds(pid) - server}
        finally:
            await target.close()

    def close(self) -> None:
        self.server.stop()


# -- rounds and the report ---------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=0,
                        help="per level (default: 3 x concurrency, at least 4)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="also ovserve's SSE server")
    parser.add_argument("--systems", nargs="+", default=["raw", "engine"],
                        choices=["raw", "engine"])
    parser.add_argument("--json", type=Path, help="write every round's numbers here")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_worker:
        raw_worker(args.model)
        return
    systems: list[Any] = []
    if "raw" in args.systems:
        systems.append(Raw(args.model))
    if "engine" in args.systems:
        systems.append(Engine(args.model))
    if args.server:
        if args.model.resolve() != MODEL.resolve():
            raise SystemExit("--server serves graphs/llm, which is the built-in model")
        systems.append(Server(Path(tempfile.mkdtemp(prefix="engine-tax-"))))
    rows: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                requests = args.requests or max(4, 3 * concurrency)
                for system in systems:
                    result = system.run(concurrency, requests, args.tokens)
                    row = {"system": system.name, "c": concurrency, "round": round_, **result}
                    rows.append(row)
                    print(_line(row), flush=True)
    finally:
        for system in systems:
            system.close()
    print()
    print(report(rows))
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=1))


def _line(row: dict[str, Any]) -> str:
    tokens = row["tokens"]
    parts = [f"{role} {row[role] * 1e3 / tokens:.2f}"
             for role in ("engine", "engine_main", "server") if role in row]
    return (f"round {row['round']} c={row['c']} {row['system']:>6}: {tokens} tokens, "
            f"{tokens / row['wall']:.0f} tok/s, CPU ms/token " + ", ".join(parts))


def report(rows: list[dict[str, Any]]) -> str:
    """Per system and level: the median over rounds of CPU ms per output token per process,
    and tokens/s (wall clock: noisy on a shared machine)."""
    lines = ["| system | c | engine CPU ms/tok (x raw) | its main thread | server CPU ms/tok | "
             "tok/s |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["c"], r["system"]) for r in rows})
    for concurrency, system in keys:
        mine = [r for r in rows if r["c"] == concurrency and r["system"] == system]

        speed = statistics.median(r["tokens"] / r["wall"] for r in mine)
        engine = _median(mine, "engine")
        raw = _median([r for r in rows if r["c"] == concurrency and r["system"] == "raw"],
                      "engine")
        ratio = f" ({engine / raw:.2f})" if engine and raw else ""
        lines.append(f"| {system} | {concurrency} | {_show(engine)}{ratio} | "
                     f"{_show(_median(mine, 'engine_main'))} | "
                     f"{_show(_median(mine, 'server'))} | {speed:.0f} |")
    return "\n".join(lines)


def _median(rows: list[dict[str, Any]], role: str) -> float | None:
    """The median over ``rows`` of ``role``'s CPU ms per output token (None: not measured)."""
    values = [r[role] * 1e3 / r["tokens"] for r in rows if role in r]
    return statistics.median(values) if values else None


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
