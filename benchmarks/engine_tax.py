"""The per-token tax of ovserve's engine process: CPU milliseconds per output token of the raw
openvino-genai pipeline against ovserve's engine (issue 29, item 2).

CPU time per token (user + system of every thread, from /proc) moves much less with other
load than wall-clock tokens/s does; so this compares CPU, in interleaved rounds, every system
in a process of its own. Each level is a closed loop of ``c`` streams, 128 tokens (ignore_eos),
greedy, distinct prompts (benchmarks.loadgen.distinct_prompt), after one warm-up request.

- ``raw``: a ContinuousBatchingPipeline built as ovserve builds it (EngineConfig's scheduler
  and properties), requests added as token ids, outputs read from the handles, no
  detokenization: the floor. ``engine`` is that process; its loop's CPU outside ``step()``
  is reported beside the ``loop`` system's.
- ``engine``: ovserve's OpenVINOEngine driven through its Python API (one thread per stream,
  ``submit(prepare(...)).deltas()``). ``engine`` is the engine process, ``server`` the
  process driving it (tokenization, the receiver thread, the readers), ``receiver`` its
  receiver thread alone.
- ``sse``: ``python -m ovserve`` serving only graphs/llm, streamed chat completions (aiohttp,
  from this process, not counted). ``server`` is the serving process, ``engine`` its engine
  process.
- ``loop``: the engine process's own work, exactly: its ``main()`` with the pipeline and the
  connection wrapped, fed ``Add`` messages on a socket pair from this process. It reports
  the loop's CPU outside ``pipeline.step()`` per step, and where it goes (each part timed
  with the thread's CPU clock, so other load hardly moves it): ``get_metrics``, the
  detokenizer model, the request handles, the connection's ``send`` and ``recv``, and the
  rest (Python, with pickling where it is not in ``send``, and the timing's own cost).

Each process's main thread is reported too (``engine_main``): what the engine's worker threads
spin away shows as the difference. How precise: on a 2-core machine the pipeline's own step()
moved 10-15% between rounds (quiet machine, 2026-12-07), so process-level differences of a few
percent are noise even as medians of 8 rounds; the loop system's parts are steady to a few
microseconds per step. ``--at LABEL=DIR`` adds the engine, loop and sse systems run
on ovserve's code in DIR, for before/after in one run: e.g. ``git worktree add /tmp/base
COMMIT``, then link this tree's ``models`` into it and copy the built
``ovserve/protocol/_buffer*.so`` there.

    .venv/bin/python -m benchmarks.engine_tax [--systems raw engine loop sse] [--rounds 5]
        [--at before=/tmp/base] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.cpu import children, own_seconds, process_seconds
from benchmarks.loadgen import BUILTIN_MODEL, distinct_prompt

REPO = Path(__file__).resolve().parents[1]
MODEL = BUILTIN_MODEL
KINDS = ("raw", "engine", "loop", "sse")


def thread_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread (the main thread: ``tid`` == ``pid``)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_commands(run: Callable[[int, int, int], dict[str, float]]) -> None:
    """A worker's protocol: one JSON line per command on stdin (concurrency, requests,
    tokens), one JSON line of results on stdout; a warm-up request before each."""
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        run(1, 1, 16)
        result = run(command["concurrency"], command["requests"], command["tokens"])
        print(json.dumps(result), flush=True)


# -- raw: the pipeline alone ----------------------------------------------------------------

def raw_worker(model: Path) -> None:
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
    ids = iter(range(1 << 30))

    def run(concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        prompts = [ov.Tensor(np.array([prompt_ids(tokenizer)], dtype=np.int64))
                   for _ in range(requests)]
        active: dict[int, Any] = {}
        produced = steps = 0
        in_step = 0.0  # this thread's CPU seconds in step()
        pid = os.getpid()
        cpu, main, wall = own_seconds(), thread_seconds(pid, pid), time.perf_counter()
        loop = time.thread_time()
        while prompts or active:
            while prompts and len(active) < concurrency:
                generation = ov_genai.GenerationConfig()
                generation.max_new_tokens = tokens
                generation.eos_token_id = eos
                generation.ignore_eos = True
                request_id = next(ids)
                active[request_id] = pipeline.add_request(request_id, prompts.pop(), generation)
            started = time.thread_time()
            pipeline.step()
            in_step += time.thread_time() - started
            steps += 1
            for request_id, handle in list(active.items()):
                if handle.can_read():
                    produced += sum(len(o.generated_ids) for o in handle.read().values())
                if handle.get_status().name != "RUNNING":
                    del active[request_id]
        return {"tokens": produced, "wall": time.perf_counter() - wall,
                "engine": own_seconds() - cpu, "engine_main": thread_seconds(pid, pid) - main,
                "loop": time.thread_time() - loop, "step": in_step, "steps": steps}

    serve_commands(run)


def prompt_ids(tokenizer: Any) -> list[int]:
    """A distinct chat prompt's token ids, as the server makes them."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": distinct_prompt()}],
                                         add_generation_prompt=True)
    ids: list[int] = tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
    return ids


# -- engine: ovserve's engine through its Python API ------------------------------------------

def engine_worker(model: Path) -> None:
    from ovserve.engine import EngineConfig, SamplingParams
    from ovserve.engine.client import OpenVINOEngine

    engine = OpenVINOEngine(EngineConfig(model))

    def one(tokens: int) -> int:
        prepared = engine.prepare(distinct_prompt(), SamplingParams(
            max_tokens=tokens, temperature=0, ignore_eos=True))
        return sum(len(delta.token_ids) for delta in engine.submit(prepared).deltas())

    def run(concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        remaining = iter(range(requests))
        counts: list[int] = []

        def stream() -> None:
            while next(remaining, None) is not None:
                counts.append(one(tokens))

        pid = engine.pid
        cpu, main, server = process_seconds(pid), thread_seconds(pid, pid), own_seconds()
        receiver = receiver_seconds()
        wall = time.perf_counter()
        threads = [threading.Thread(target=stream) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"tokens": sum(counts), "wall": time.perf_counter() - wall,
                "engine": process_seconds(pid) - cpu,
                "engine_main": thread_seconds(pid, pid) - main, "server": own_seconds() - server,
                "receiver": receiver_seconds() - receiver}

    def receiver_seconds() -> float:
        """CPU seconds of the engine's receiver thread (``engine-<model>``)."""
        return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident))
                   for t in threading.enumerate() if t.name.startswith("engine-") and t.ident)

    try:
        serve_commands(run)
    finally:
        engine.close()


# -- loop: the engine process's own work, timed part by part ------------------------------------

#: the parts of the loop thread's CPU the loop system times
PARTS = ("step", "get_metrics", "detokenizer", "handles", "send", "recv")


class _Clock:
    """CPU seconds of the calling thread spent in each part."""

    def __init__(self) -> None:
        self.parts = dict.fromkeys(PARTS, 0.0)
        self.steps = 0

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.parts[part] += time.thread_time() - started

        return timed


class _Timed:
    """An object whose methods named in ``parts`` are timed (the rest pass through)."""

    def __init__(self, target: Any, clock: _Clock, parts: dict[str, str],
                 wrap_result: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self._target, self._clock, self._parts = target, clock, parts
        self._wrap_result = wrap_result or {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in self._parts:
            value = self._clock.wrap(self._parts[name], value)
        if name in self._wrap_result:
            inner, wrap = value, self._wrap_result[name]
            return lambda *a, **k: wrap(inner(*a, **k))
        return value


def loop_worker(model: Path, fd: int) -> None:
    """The engine process's ``main()`` on connection ``fd``, with the pipeline and the
    connection timed. Each line on stdin asks for the counters so far (a JSON line on stdout:
    a thread that sleeps in a read meanwhile, so that nothing else runs in this process)."""
    import logging
    from multiprocessing.connection import Connection

    import openvino_genai as ov_genai

    from ovserve.engine import EngineConfig
    from ovserve.engine import process as engine_process

    clock = _Clock()
    handle_parts = dict.fromkeys(("can_read", "read", "get_status", "cancel"), "handles")
    built = ov_genai.ContinuousBatchingPipeline

    def pipeline(*args: Any) -> Any:
        real = built(*args)

        def step() -> None:
            clock.steps += 1
            clock.wrap("step", real.step)()

        timed = _Timed(real, clock, {"get_metrics": "get_metrics"}, {
            "add_request": lambda handle: _Timed(handle, clock, handle_parts),
            "get_tokenizer": lambda tokenizer: _Timed(tokenizer, clock,
                                                      {"decode": "detokenizer"})})
        timed.step = step  # type: ignore[attr-defined]
        return timed

    ov_genai.ContinuousBatchingPipeline = pipeline  # main() builds it

    class TimedConnection(Connection):
        def send(self, obj: Any) -> None:
            clock.wrap("send", super().send)(obj)

        def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
            clock.wrap("send", super().send_bytes)(buf, offset, size)

        def recv(self) -> Any:
            return clock.wrap("recv", super().recv)()

    engine_clock = time.pthread_getcpuclockid(threading.get_ident())

    def report() -> None:
        for _ in sys.stdin:
            print(json.dumps({"loop": time.clock_gettime(engine_clock), "steps": clock.steps,
                              **clock.parts}), flush=True)

    threading.Thread(target=report, daemon=True).start()
    engine_process.main(EngineConfig(model), TimedConnection(fd), logging.WARNING)


class Loop:
    """Drives a ``loop`` worker as the server would: its messages on a socket pair."""

    def __init__(self, model: Path, tree: Path, label: str = "") -> None:
        import openvino_genai as ov_genai

        from ovserve.engine.messages import Ready

        self.name = "loop" + (f"@{label}" if label else "")
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = _start("loop", model, tree, "--fd", str(theirs.fileno()),
                                  pass_fds=(theirs.fileno(),))
        self.conn = Connection(ours.detach())
        self.ready = self.conn.recv()
        assert isinstance(self.ready, Ready), self.ready
        self.tokenizer = ov_genai.Tokenizer(str(model))
        self.ids = iter(range(1 << 30))

    def _counters(self) -> dict[str, float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def _level(self, concurrency: int, requests: int, tokens: int) -> tuple[int, float]:
        from ovserve.engine.messages import Add, Step

        fields = {"max_new_tokens": tokens, "eos_token_id": self.ready.eos_token_id,
                  "stop_token_ids": set(self.ready.stop_token_ids), "ignore_eos": True,
                  "min_new_tokens": 0, "do_sample": False, "temperature": 1.0}
        prompts = [prompt_ids(self.tokenizer) for _ in range(requests)]
        active: set[int] = set()
        produced = 0
        wall = time.perf_counter()
        while prompts or active:
            while prompts and len(active) < concurrency:
                request_id = next(self.ids)
                self.conn.send(Add(request_id, prompts.pop(), dict(fields)))
                active.add(request_id)
            message = self.conn.recv()
            assert isinstance(message, Step)
            for output in message.outputs:
                produced += len(output.token_ids)
                if output.done:
                    active.discard(output.request_id)
        return produced, time.perf_counter() - wall

    def run(self, concurrency: int, requests: int, tokens: int) -> dict[str, float]:
        self._level(1, 1, 16)  # warm-up
        before = self._counters()
        produced, wall = self._level(concurrency, requests, tokens)
        after = self._counters()
        return {"tokens": produced, "wall": wall,
                **{key: after[key] - before[key] for key in after}}

    def close(self) -> None:
        from ovserve.engine.messages import Close

        self.conn.send(Close())
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# -- the systems, each in a process of its own ----------------------------------------------

def _start(kind: str, model: Path, tree: Path, *extra: str,
           pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    """A worker process on ovserve's code in ``tree`` (run as a file: its own folder first on
    sys.path, then the tree; in the tree, where the engine process it starts with ``python
    -m`` looks first)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--model", str(model),
         *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=pass_fds,
        cwd=tree, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(tree), str(REPO), os.environ.get("PYTHONPATH")) if p)})


class Worker:
    """A ``raw`` or ``engine`` worker on ovserve's code in ``tree``."""

    def __init__(self, kind: str, model: Path, tree: Path, label: str = "") -> None:
        self.name = kind + (f"@{label}" if label else "")
        self.process = _start(kind, model, tree)
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


class Server:
    """``python -m ovserve`` on ovserve's code in ``tree``, serving its graphs/llm (the
    built-in model) alone, over SSE."""

    def __init__(self, logs: Path, tree: Path, label: str = "") -> None:
        from benchmarks.servers import Process, free_port

        self.name = "sse" + (f"@{label}" if label else "")
        logs.mkdir(parents=True, exist_ok=True)
        config = logs / "config.json"
        config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
            {"name": MODEL.name, "base_path": str(tree / "graphs" / "llm")}]}))
        grpc_port, rest_port = free_port(), free_port()
        log = logs / "ovserve.log"
        with log.open("wb") as out:  # run in the tree: python -m puts it first on sys.path
            process = subprocess.Popen(
                [sys.executable, "-m", "ovserve", "--config_path", str(config), "--port",
                 str(grpc_port), "--rest_port", str(rest_port), "--host", "127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT, cwd=tree)
        self.server = Process(self.name, process, log, rest_port, grpc_port).wait_ready(
            "/v2/health/ready")

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


# -- rounds and the report ----------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--systems", nargs="+", default=["raw", "engine", "loop"],
                        choices=KINDS)
    parser.add_argument("--at", nargs="*", default=[], metavar="LABEL=DIR",
                        help="also the engine, loop and sse systems on ovserve's code in DIR "
                             "(with the built-in model in DIR/models)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=0,
                        help="per level (default: 3 x concurrency, at least 4)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every round's numbers here")
    parser.add_argument("--worker", choices=KINDS[:3], help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model.resolve()  # workers run in their tree
    if args.worker == "loop":
        loop_worker(args.model, args.fd)
        return
    if args.worker:
        {"raw": raw_worker, "engine": engine_worker}[args.worker](args.model)
        return
    if "sse" in args.systems and args.model.resolve() != MODEL.resolve():
        raise SystemExit("the sse system serves graphs/llm, which is the built-in model")
    trees = [("", REPO)] + [(label, Path(tree)) for label, _, tree in
                            (a.partition("=") for a in args.at)]
    systems: list[Worker | Loop | Server] = []
    try:
        for kind in args.systems:
            for label, tree in trees:
                if kind == "raw" and label:
                    continue
                if kind == "sse":
                    systems.append(Server(Path(tempfile.mkdtemp(prefix="engine-tax-")), tree,
                                          label))
                else:
                    systems.append(Loop(args.model, tree, label) if kind == "loop"
                                   else Worker(kind, args.model, tree, label))
        rows: list[dict[str, Any]] = []
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
    parts = [f"{role} {row[role] * 1e3 / tokens:.3f}"
             for role in ("engine", "engine_main", "server", "receiver", "loop") if role in row]
    if "steps" in row:
        parts.append(f"outside step() {_outside(row) * 1e3 / row['steps']:.3f} ms/step")
    return (f"round {row['round']} c={row['c']} {row['system']:>12}: {tokens} tokens, "
            f"{tokens / row['wall']:.0f} tok/s, CPU ms/token " + ", ".join(parts))


def _outside(row: dict[str, Any]) -> float:
    return float(row["loop"] - row["step"])


def report(rows: list[dict[str, Any]]) -> str:
    """Medians over the rounds, per system and level."""
    lines = ["CPU ms per output token (median of the rounds; x raw: of the raw pipeline's):",
             "",
             "| system | c | engine process (x raw) | its main thread | server | its receiver "
             "thread | tok/s |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["c"], r["system"]) for r in rows if "engine" in r})
    for concurrency, system in keys:
        mine = [r for r in rows if r["c"] == concurrency and r["system"] == system]
        engine = _median(mine, "engine")
        raw = _median([r for r in rows if r["c"] == concurrency and r["system"] == "raw"],
                      "engine")
        ratio = f" ({engine / raw:.3f})" if engine and raw else ""
        speed = statistics.median(r["tokens"] / r["wall"] for r in mine)
        lines.append(f"| {system} | {concurrency} | {_show(engine)}{ratio} | "
                     f"{_show(_median(mine, 'engine_main'))} | "
                     f"{_show(_median(mine, 'server'))} | {_show(_median(mine, 'receiver'))} | "
                     f"{speed:.0f} |")
    loops = sorted({(r["c"], r["system"]) for r in rows if "steps" in r})
    if loops:
        lines += ["", "The engine loop's thread: CPU ms per step outside pipeline.step(), and "
                  "its parts (median of the rounds):", "",
                  "| system | c | step() | outside | " + " | ".join(PARTS[1:]) + " | rest |",
                  "|---|---|---|---|" + "---|" * len(PARTS)]
        for concurrency, system in loops:
            mine = [r for r in rows if r["c"] == concurrency and r["system"] == system]

            columns = [[float(r["step"]), _outside(r), *(float(r.get(p, 0)) for p in PARTS[1:]),
                        _outside(r) - sum(r.get(p, 0) for p in PARTS[1:])] for r in mine]
            medians = [statistics.median(c[k] * 1e3 / r["steps"] for c, r in
                                         zip(columns, mine, strict=True))
                       for k in range(len(columns[0]))]
            lines.append(f"| {system} | {concurrency} | "
                         + " | ".join(f"{m:.3f}" for m in medians) + " |")
    return "\n".join(lines)


def _median(rows: list[dict[str, Any]], role: str) -> float | None:
    """The median over ``rows`` of ``role``'s CPU ms per output token (None: not measured)."""
    values = [r[role] * 1e3 / r["tokens"] for r in rows if role in r]
    return statistics.median(values) if values else None


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
