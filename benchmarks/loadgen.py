"""An async, bounded, closed-loop load generator for streaming LLM endpoints (loopback only).

Each level runs ``concurrency`` workers that send one request at a time until
``requests`` are done, after a warm-up. Every request has a distinct prompt (prefix caching
must not be what is measured). Per request it records the time to the first token (TTFT), the
gaps between streamed chunks (inter-token latency), the time per output token after the first
(TPOT) and the end-to-end latency.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.cpu import CpuMeter, per_token_ms

#: the built-in model: its served name and its folder
MODEL_ID = "smollm2-135m-instruct"
BUILTIN_MODEL = Path(__file__).resolve().parent.parent / "models" / MODEL_ID


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model``: the OpenVINO model folder a benchmark runs (the built-in model's when not
    given)."""
    parser.add_argument("--model", type=Path, default=BUILTIN_MODEL,
                        help="the OpenVINO model folder (default: the built-in model's), e.g. "
                        "models/tinyllama-1.1b-shaped-int8 from scripts/make_shaped_model.py")

TOPICS = ["the Moon", "volcanoes", "honey bees", "the Roman Empire", "black holes", "penguins",
          "the printing press", "rainforests", "jazz", "glaciers", "chess", "the Nile",
          "electric cars", "coral reefs", "the telescope", "tea", "deserts", "bridges",
          "comets", "the violin", "salmon", "windmills", "the Silk Road", "origami"]
_nonce = itertools.count()


def distinct_prompt() -> str:
    n = next(_nonce)
    return f"[{n}] Write a detailed essay about {TOPICS[n % len(TOPICS)]}."


@dataclass
class RequestResult:
    ttft: float = 0.0
    e2e: float = 0.0
    tokens: int = 0
    gaps: list[float] = field(default_factory=list)
    error: str | None = None

    started: float = field(default_factory=time.perf_counter)
    chunks: int = 0
    _last: float = 0.0

    @property
    def tpot(self) -> float | None:
        return (self.e2e - self.ttft) / (self.tokens - 1) if self.tokens > 1 else None

    def chunk(self, now: float | None = None) -> None:
        """A streamed chunk with text arrived (first one: TTFT; later ones: a gap)."""
        now = time.perf_counter() if now is None else now
        if self.chunks == 0:
            self.ttft = now - self.started
        else:
            self.gaps.append(now - self._last)
        self._last, self.chunks = now, self.chunks + 1

    def finish(self) -> RequestResult:
        self.e2e = time.perf_counter() - self.started
        self.tokens = self.tokens or self.chunks
        return self


class Target(Protocol):
    name: str

    async def request(self, prompt: str, max_tokens: int) -> RequestResult: ...


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99)}


@dataclass
class LevelResult:
    system: str
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    errors: int
    ttft: dict[str, float]
    tpot: dict[str, float]
    itl: dict[str, float]
    e2e: dict[str, float]
    rounds: int = 1
    #: CPU seconds per role during the level (benchmarks.cpu: server, engine, client)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    results: list[RequestResult] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, system: str, concurrency: int, results: list[RequestResult], seconds: float,
           rounds: int = 1, cpu_seconds: dict[str, float] | None = None) -> LevelResult:
        ok = [r for r in results if r.error is None]
        return cls(
            system=system, concurrency=concurrency, requests=len(results), seconds=seconds,
            output_tokens=sum(r.tokens for r in ok), errors=len(results) - len(ok),
            ttft=percentiles([r.ttft for r in ok]),
            tpot=percentiles([t for r in ok if (t := r.tpot) is not None]),
            itl=percentiles([g for r in ok for g in r.gaps]),
            e2e=percentiles([r.e2e for r in ok]), rounds=rounds, cpu_seconds=cpu_seconds or {},
            results=results)

    @property
    def cpu_ms_per_token(self) -> dict[str, float]:
        return per_token_ms(self.cpu_seconds, self.output_tokens)

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "results"}
        return {**data, "tokens_per_second": self.tokens_per_second,
                "cpu_ms_per_token": self.cpu_ms_per_token,
                "requests_per_second": self.requests_per_second,
                "first_error": next((r.error for r in self.results if r.error), None)}


def merge(rounds: list[LevelResult]) -> LevelResult:
    """Several rounds of one system at one level as one result: every request's latencies,
    throughput over the rounds' summed time, CPU summed."""
    cpu: dict[str, float] = {}
    for level in rounds:
        for role, seconds in level.cpu_seconds.items():
            cpu[role] = cpu.get(role, 0.0) + seconds
    return LevelResult.of(rounds[0].system, rounds[0].concurrency,
                          [r for level in rounds for r in level.results],
                          sum(level.seconds for level in rounds), rounds=len(rounds),
                          cpu_seconds=cpu)


async def run_level(target: Target, concurrency: int, requests: int, max_tokens: int,
                    warmup: int = 2, server_pid: int | None = None) -> LevelResult:
    """One level; ``server_pid``: the serving process whose CPU (and its children's) is
    recorded beside this process's."""
    for _ in range(warmup):
        await target.request(distinct_prompt(), 16)
    remaining = itertools.count()
    results: list[RequestResult] = []

    async def worker() -> None:
        while next(remaining) < requests:
            results.append(await target.request(distinct_prompt(), max_tokens))

    meter = CpuMeter(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return LevelResult.of(target.name, concurrency, results, seconds,
                          cpu_seconds=meter.finish())


class OpenAIChatTarget:
    """Chat completions over SSE (ovserve /v1, llama-cpp-python's server, ...).

    aiohttp rather than httpx: the client shares the two cores with the server and the engine,
    and aiohttp's C parser costs less CPU per streamed chunk."""

    def __init__(self, name: str, base_url: str, model: str,
                 extra: dict[str, Any] | None = None, keepalive: bool = True) -> None:
        self.name = name
        # False: a new connection per request (a server that drops idle keep-alive
        # connections would otherwise fail the requests that reuse them)
        self.keepalive = keepalive
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.extra = extra or {}  # more request fields, e.g. {"ignore_eos": True}
        self._session: Any = None

    @property
    def session(self) -> Any:
        """Created on first use, on the event loop that uses it."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=600),
                connector=aiohttp.TCPConnector(limit=256, force_close=not self.keepalive))
        return self._session

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        body = {"model": self.model, "max_tokens": max_tokens, "stream": True,
                "stream_options": {"include_usage": True}, "temperature": 0,
                "messages": [{"role": "user", "content": prompt}], **self.extra}
        result = RequestResult()
        try:
            async with self.session.post(self.url, json=body) as reply:
                if reply.status != 200:
                    result.error = (await reply.text())[:200]
                    return result.finish()
                async for raw in reply.content:
                    if not raw.startswith(b"data: ") or raw.startswith(b"data: [DONE]"):
                        continue
                    event = json.loads(raw[6:])
                    if event.get("usage"):
                        result.tokens = event["usage"]["completion_tokens"]
                    choices = event.get("choices") or []
                    if choices and choices[0].get("delta", {}).get("content"):
                        result.chunk()
        except Exception as exc:  # a failed request is counted, not fatal
            result.error = repr(exc)
        return result.finish()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class GrpcStreamTarget:
    """The seed's servable_stream over KServe gRPC ModelStreamInfer (tritonclient aio)."""

    def __init__(self, name: str, url: str, model: str = "python_model") -> None:
        import tritonclient.grpc.aio as grpcclient

        self.name = name
        self.model = model
        self.url = url
        self.grpcclient = grpcclient
        self._client: Any = None

    @property
    def client(self) -> Any:
        """Created on first use: a grpc.aio channel belongs to the event loop it was made on."""
        if self._client is None:
            self._client = self.grpcclient.InferenceServerClient(self.url)
        return self._client

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        import numpy as np

        tensor = self.grpcclient.InferInput("pre_prompt", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))

        async def one() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": self.model, "inputs": [tensor]}  # the server sets max tokens

        result = RequestResult()
        try:
            async for response, error in self.client.stream_infer(one()):
                if error is not None:
                    result.error = str(error)
                    break
                if response.as_numpy("completion") is not None:
                    result.chunk()
                elif response.as_numpy("token_count") is not None:
                    result.tokens = int(response.as_numpy("token_count")[0])
                elif response.as_numpy("end_signal") is not None:
                    break
        except Exception as exc:
            result.error = repr(exc)
        return result.finish()


def server_properties() -> tuple[dict[str, Any], str]:
    """The OpenVINO properties an ovserve LLM engine on CPU gets here from a graph with an empty
    plugin_config (graphs/llm's), and how they were chosen: $OVSERVE_PLUGIN_CONFIG's (as the
    server reads it) over the CPU table's for this CPU's family (ovserve.engine.cpu_properties;
    off with $OVSERVE_NO_CPU_TABLE)."""
    from ovserve.cli import env_flag, env_plugin_config
    from ovserve.engine.cpu_properties import ENV_OFF, CpuTable
    from ovserve.engine.devices import DeviceChoice

    devices = DeviceChoice(None, env_plugin_config())
    options, choice = CpuTable(enabled=not env_flag(ENV_OFF)).apply(
        devices.apply({"device": "CPU"}), devices.properties("CPU"))
    properties = dict(options.get("plugin_config") or {})
    note = choice.describe() if choice is not None else "not on CPU"
    server = devices.properties("CPU")
    if server:
        note += f"; $OVSERVE_PLUGIN_CONFIG sets {server}"
    return properties, note


class RawEngineTarget:
    """openvino-genai's ContinuousBatchingPipeline in this process: the ceiling.

    One thread adds requests and calls step(); token arrival is timed in that thread, with
    no detokenization and no serving layer in between.
    """

    name = "raw openvino-genai"

    def __init__(self, models_path: Path, properties: Mapping[str, Any] | None = None,
                 scheduler: Mapping[str, Any] | None = None) -> None:
        """The scheduler is the server's (ovserve's EngineConfig defaults, which
        graphs/llm/graph.pbtxt also uses; ``scheduler``: EngineConfig fields laid over them).
        ``properties``: the pipeline's OpenVINO properties; None: those ovserve's engine gets
        on this CPU (``server_properties``), so raw and ovserve stay like for like.
        ``self.properties`` / ``self.properties_note`` say what it used and why."""
        import openvino_genai as ov_genai

        from ovserve.engine import EngineConfig
        from ovserve.engine.process import scheduler_config

        if properties is None:
            properties, note = server_properties()
        else:
            note = "given by the caller"
        #: the OpenVINO properties the pipeline was built with, and where they came from
        self.properties: dict[str, Any] = dict(properties)
        self.properties_note = note
        self.pipeline = ov_genai.ContinuousBatchingPipeline(
            str(models_path), scheduler_config(EngineConfig(models_path, **(scheduler or {}))),
            "CPU", self.properties)
        self.tokenizer = self.pipeline.get_tokenizer()
        self.eos = self.pipeline.get_config().eos_token_id
        self.ov_genai = ov_genai
        self.lock = threading.Condition()
        self.pending: list[tuple[int, str, int, float, asyncio.AbstractEventLoop,
                                 asyncio.Future[RequestResult]]] = []
        self.ids = itertools.count()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    async def close(self) -> None:
        """Stop the stepping thread once no request is left (the pipeline stays usable from
        the caller's thread, e.g. for ``pipeline.generate``)."""
        with self.lock:
            self.closed = True
            self.lock.notify()
        await asyncio.to_thread(self.thread.join)

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        started = time.perf_counter()  # the clock starts where a client's would
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RequestResult] = loop.create_future()
        templated = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                       add_generation_prompt=True)
        with self.lock:
            self.pending.append((next(self.ids), templated, max_tokens, started, loop, future))
            self.lock.notify()
        return await future

    def _loop(self) -> None:
        active: dict[int, tuple[Any, RequestResult, Any, Any]] = {}
        while True:
            with self.lock:
                while not self.pending and not active:
                    if self.closed:
                        return
                    self.lock.wait()
                pending, self.pending = self.pending, []
            for request_id, prompt, max_tokens, started, loop, future in pending:
                config = self.ov_genai.GenerationConfig(max_new_tokens=max_tokens)
                config.eos_token_id = self.eos
                config.ignore_eos = True  # every system generates exactly max_tokens
                handle = self.pipeline.add_request(request_id, prompt, config)
                active[request_id] = (handle, RequestResult(started=started), loop, future)
            self.pipeline.step()
            now = time.perf_counter()
            for request_id, (handle, result, loop, future) in list(active.items()):
                if handle.can_read():
                    new = sum(len(o.generated_ids) for o in handle.read().values())
                    if new:
                        result.chunk(now)
                        result.tokens += new
                if handle.get_status().name != "RUNNING":
                    loop.call_soon_threadsafe(future.set_result, result.finish())
                    del active[request_id]


def summary_table(levels: list[LevelResult]) -> str:
    rows = ["| system | conc. | req | out tok/s | req/s | TTFT p50/p90/p99 (ms) | "
            "TPOT p50 (ms) | ITL p50/p99 (ms) | e2e p50/p99 (s) | errors |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in levels:
        rows.append(
            f"| {r.system} | {r.concurrency} | {r.requests} | {r.tokens_per_second:.0f} | "
            f"{r.requests_per_second:.2f} | {r.ttft['p50'] * 1e3:.0f} / "
            f"{r.ttft['p90'] * 1e3:.0f} / {r.ttft['p99'] * 1e3:.0f} | "
            f"{r.tpot['p50'] * 1e3:.1f} | {r.itl['p50'] * 1e3:.1f} / {r.itl['p99'] * 1e3:.1f} | "
            f"{r.e2e['p50']:.2f} / {r.e2e['p99']:.2f} | {r.errors} |")
    return "\n".join(rows)


def median(values: list[float]) -> float:
    return statistics.median(values)
