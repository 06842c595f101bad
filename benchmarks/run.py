#!/usr/bin/env python3
"""Benchmark ovserve against the raw engine underneath it, side by side, in one run.

Systems (same model, same two cores, one session):
  (a) raw openvino-genai ContinuousBatchingPipeline in this process (the ceiling)
  (b) ovserve, OpenAI chat completions over SSE
  (c) ovserve, KServe gRPC ModelStreamInfer on servables/servable_stream
  (d) llama-cpp-python's OpenAI server on the same model's GGUF, 2 threads
  (e) the seed's approach: optimum-intel generate per request in a Python node
      (benchmarks/seed_approach), served by ovserve over gRPC ModelStreamInfer
At every concurrency level each system runs in turn, (a)-(c) for several rounds interleaved,
so machine noise hits all of them alike; (d) and (e) run one round (they are slow).
Before the levels it measures the machine's memory read bandwidth (benchmarks/bandwidth.py), and
records the CPU model and ISA flags. Writes serving.{md,json} and PNG plots to
benchmarks/results/serving/<CPU family>-<model>/ (benchmarks/families.py), so runs on different
CPU families and models keep their own results, and renders the README's table of results by
CPU family; see README for the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import bandwidth as membw  # noqa: E402
from benchmarks import families  # noqa: E402
from benchmarks.cpu import ROLES  # noqa: E402
from benchmarks.honesty import (  # noqa: E402
    LoadProbe,
    trust_section,
    trusted_levels,
    verdict,
    wait_until_quiet,
)
from benchmarks.loadgen import (  # noqa: E402
    MODEL_ID,
    GrpcStreamTarget,
    LevelResult,
    OpenAIChatTarget,
    RawEngineTarget,
    Target,
    add_model_argument,
    merge,
    run_level,
    summary_table,
)
from benchmarks.servers import (  # noqa: E402
    Process,
    start_llamacpp,
    start_ovserve,
    start_xllamacpp,
)

RAW, SSE, GRPC, XLLAMA = families.RAW, families.SSE, families.GRPC, families.XLLAMA
SSE_PL = "ovserve OpenAI SSE, prompt lookup"
LLAMA, SEED = "llama-cpp-python server", "seed approach (optimum-intel per request)"
SYSTEMS = {"raw": RAW, "sse": SSE, "sse-pl": SSE_PL, "grpc": GRPC, "xllamacpp": XLLAMA,
           "llamacpp": LLAMA, "seed": SEED}


@dataclass
class System:
    target: Target
    rounds: int
    server: Process | None = None  # its CPU is recorded (None: the engine runs in here)


def machine(bandwidth: membw.Bandwidth | None = None) -> dict[str, Any]:
    """The machine a run measured: the CPU model, the ISA flags that choose the kernels, the CPU
    family (benchmarks/families.py), memory, versions and the measured read bandwidth."""
    import openvino
    import openvino_genai

    cpu, isa = families.cpu_model(), families.isa_flags()
    memory = 0
    with contextlib.suppress(OSError, StopIteration):
        memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text()
                          .splitlines() if line.startswith("MemTotal"))) // 1024
    found: dict[str, Any] = {
        "cpu": cpu, "family": families.family(cpu, isa), "isa": isa, "cores": os.cpu_count(),
        "memory_mib": memory, "python": platform.python_version(),
        "openvino": openvino.__version__, "openvino_genai": openvino_genai.__version__}
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # caps the kernels oneDNN picks
        found["onednn_max_cpu_isa"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    if bandwidth is not None:
        found["bandwidth_gbps"] = bandwidth.gbps
    return found


def model_source(model: Path) -> str:
    """Where the model folder came from (ovserve_model.json's source), e.g.
    'builtin:smollm2-135m-instruct' or 'shaped:tinyllama-1.1b-shaped'."""
    from ovserve.toolchain import provenance

    return str(provenance.read(model).get("source", ""))


def weight_bytes(model: Path, gguf: Path | None) -> dict[str, int]:
    """The bytes of weights a decode step reads, per kind of system: the IR's weight file
    (openvino_model.bin) for the OpenVINO systems, the GGUF's tensor data (its metadata and
    tokenizer left out) for llama.cpp's."""
    found = {}
    ir = model / "openvino_model.bin"
    if ir.is_file():
        found["openvino"] = ir.stat().st_size
    if gguf is not None and gguf.is_file():
        from gguf import GGUFReader

        found["gguf"] = sum(int(tensor.n_bytes) for tensor in GGUFReader(gguf).tensors)
    return found


#: which weights each system reads (systems not here have no figure: the seed's approach runs
#: another export, prompt lookup gives several tokens per step)
WEIGHTS_OF = {RAW: "openvino", SSE: "openvino", GRPC: "openvino", XLLAMA: "gguf",
              LLAMA: "gguf"}
#: the most streams a system decodes in one step (llama.cpp's server: its 8 slots;
#: llama-cpp-python: one request at a time); the others batch every stream
STREAMS_CAP = {XLLAMA: 8, LLAMA: 1}

FRACTION_NOTE = (
    "A decode step reads every weight once for the whole batch, however many streams are in it, "
    "so memory bandwidth bounds the step rate, not the token rate: at most bandwidth / weight "
    "bytes steps per second. At c concurrent streams each step gives every stream one token, "
    "so the step rate is tokens/s / c, and the fraction of the limit is **(tokens/s / c) x "
    "weight bytes / bandwidth** (at c=1: tokens/s x weight bytes / bandwidth). llama.cpp's "
    "server decodes at most its 8 slots at once, so there c counts up to 8 (llama-cpp-python: "
    "1). Weight bytes: openvino_model.bin for the OpenVINO systems, the GGUF's tensor data for "
    "llama.cpp. It is a lower bound of a step's traffic: it leaves out the KV cache's reads "
    "(they grow with the streams and the context), activations, and the prefills' time (part of "
    "every closed-loop level, so tokens/s / c undercounts the decode step rate at high "
    "concurrency); an untied model's input embedding table counts although a step reads one "
    "row of it.")


def bandwidth_fraction(tokens_per_second: float, concurrency: int, weights: int,
                       bandwidth_gbps: float, streams_cap: int | None = None) -> float:
    """The fraction of the memory-bandwidth limit a level reached: its step rate (tokens/s
    over the streams decoded together) times the weight bytes a step reads, over the
    bandwidth."""
    together = min(concurrency, streams_cap) if streams_cap else concurrency
    return tokens_per_second / together * weights / (bandwidth_gbps * 1e9)


def fractions(levels: list[LevelResult], weights: dict[str, int],
              bandwidth_gbps: float | None) -> list[dict[str, Any]]:
    """Every level's fraction of the bandwidth limit, for the systems whose weights are known."""
    if not bandwidth_gbps:
        return []
    found = []
    for r in levels:
        kind = WEIGHTS_OF.get(r.system)
        if kind is None or kind not in weights or not r.output_tokens:
            continue
        found.append({"system": r.system, "concurrency": r.concurrency,
                      "weight_bytes": weights[kind],
                      "fraction": round(bandwidth_fraction(
                          r.tokens_per_second, r.concurrency, weights[kind], bandwidth_gbps,
                          STREAMS_CAP.get(r.system)), 4)})
    return found


def fraction_table(found: list[dict[str, Any]]) -> str:
    systems = [s for s in SYSTEMS.values() if any(f["system"] == s for f in found)]
    concurrency = sorted({f["concurrency"] for f in found})
    rows = ["| system | weight MB per step | " + " | ".join(f"c={c}" for c in concurrency)
            + " |", "|---|---|" + "---|" * len(concurrency)]
    for system in systems:
        mine = {f["concurrency"]: f for f in found if f["system"] == system}
        size = next(iter(mine.values()))["weight_bytes"] / 1e6
        rows.append(f"| {system} | {size:.0f} | " + " | ".join(
            f"{mine[c]['fraction']:.0%}" if c in mine else "-" for c in concurrency) + " |")
    return "\n".join(rows)


BUILTIN_GOALS = "built-in model"
SHAPED_GOALS = "1.1B-shaped model"


def targets_check(levels: list[LevelResult], trust: list[dict[str, Any]],
                  source: str = f"builtin:{MODEL_ID}",
                  found_fractions: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Issue 29's goals (and the earlier ones still meaningful) as checks. A check counts as met
    or not met only when every level it uses is trustworthy (``trust``, benchmarks/honesty.py);
    otherwise it is marked untrusted, with what the figure would say. ``source``: the model's
    provenance source; 'builtin:' and 'shaped:' (scripts/make_shaped_model.py) models have goals
    of their own."""
    trusted = trusted_levels(trust)
    builtin, shaped = source.startswith("builtin:"), source.startswith("shaped:")
    fraction_of = {(f["system"], f["concurrency"]): f["fraction"]
                   for f in found_fractions or []}

    def tps(system: str, concurrency: int) -> float | None:
        found = next((r for r in levels if r.system == system and r.concurrency == concurrency),
                     None)
        return found.tokens_per_second if found and found.output_tokens else None

    def ttft(system: str) -> float | None:
        found = next((r for r in levels if r.system == system and r.concurrency == 1), None)
        return found.ttft["p50"] if found and found.output_tokens else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    checks: list[dict[str, Any]] = []

    def check(target: str, value: float | None, goal: float | None, at: tuple[int, ...],
              note: str = "", at_most: bool = False) -> None:
        """``goal``: the value must be at least it (``at_most``: at most it); None: no goal."""
        entry: dict[str, Any] = {"target": target,
                                 "value": None if value is None else round(value, 3),
                                 "met": None, "levels": list(at)}
        if value is not None and goal is not None:
            met = value <= goal if at_most else value >= goal
            untrusted = [c for c in at if not trusted.get(c, False)]
            if untrusted:
                entry["untrusted"] = untrusted
                entry["met_if_trusted"] = met
            else:
                entry["met"] = met
        if note:
            entry["note"] = note
        checks.append(entry)

    for system in (SSE, GRPC, SSE_PL):
        if not any(r.system == system for r in levels):
            continue  # not in this run
        default = system != SSE_PL  # the goals are for ovserve as it ships
        for c in (1, 8, 32):
            if tps(system, c) is not None:
                check(f"{system}: throughput at concurrency {c} >= 0.95 x raw",
                      ratio(tps(system, c), tps(RAW, c)), 0.95, (c,))
        if shaped and default:
            for c in (1, 8):
                check(f"{system}: throughput at concurrency {c} >= 0.97 x raw ({SHAPED_GOALS})",
                      ratio(tps(system, c), tps(RAW, c)), 0.97, (c,))
        raw1, at1 = ttft(RAW), ttft(system)
        check(f"{system}: TTFT p50 at concurrency 1 within 15 ms of raw (ms above raw)",
              (at1 - raw1) * 1e3 if raw1 is not None and at1 is not None else None, 15, (1,),
              at_most=True)
        in_run = any(r.system == XLLAMA for r in levels)
        note = "" if in_run else "xllamacpp not in this run"
        if builtin:
            check(f"{system}: throughput at concurrency 1 >= llama.cpp's server (xllamacpp)",
                  ratio(tps(system, 1), tps(XLLAMA, 1)), 1.0, (1,), note)
            check(f"{system}: throughput at concurrency 8 >= 3 x llama.cpp's server (xllamacpp)",
                  ratio(tps(system, 8), tps(XLLAMA, 8)), 3.0, (8,), note)
        if shaped:
            check(f"{system}: throughput at concurrency 8 ahead of llama.cpp's server "
                  f"(xllamacpp, {SHAPED_GOALS})",
                  ratio(tps(system, 8), tps(XLLAMA, 8)), 1.0, (8,), note)
        if default:
            value = fraction_of.get((system, 1))
            check(f"{system}: at concurrency 1 >= 50% of the memory-bandwidth limit",
                  value, 0.5, (1,), "" if value is not None else
                  "no bandwidth or weight size recorded")
        llama8 = tps(LLAMA, 8)
        if llama8:
            check(f"{system}: throughput at concurrency 8 >= 5 x llama-cpp-python server",
                  ratio(tps(system, 8), llama8), 5.0, (8,))
        seed8 = tps(SEED, 8)
        if tps(system, 8) and seed8:
            check(f"{system}: throughput at concurrency 8 vs the seed's approach (no target)",
                  ratio(tps(system, 8), seed8), None, (8,))
    return checks


def check_state(check: dict[str, Any]) -> str:
    """A check's state as the report shows it."""
    if check.get("untrusted"):
        levels = ", ".join(f"c={c}" for c in check["untrusted"])
        would = "would be met" if check.get("met_if_trusted") else "would not be met"
        return f"untrusted: {levels} not trustworthy; {would}"
    return {True: "met", False: "NOT met", None: "-"}[check["met"]]


def targets_summary(checks: list[dict[str, Any]]) -> str:
    goals = [c for c in checks if c["met"] is not None or c.get("untrusted")
             or c["value"] is None]
    met = sum(c["met"] is True for c in goals)
    missed = sum(c["met"] is False for c in goals)
    untrusted = sum(bool(c.get("untrusted")) for c in goals)
    unmeasured = sum(c["value"] is None for c in goals)
    return (f"{met} met, {missed} not met, {untrusted} untrusted (a level they use is not "
            f"trustworthy: shown, not counted), {unmeasured} not measured in this run.")


def ratio_table(levels: list[LevelResult]) -> str:
    """Output tokens/s of every system as a fraction of the raw engine's, per level."""
    systems = [s for s in SYSTEMS.values() if any(r.system == s for r in levels)]
    concurrency = sorted({r.concurrency for r in levels})
    rows = ["| system | " + " | ".join(f"c={c}" for c in concurrency) + " |",
            "|---|" + "---|" * len(concurrency)]
    for system in systems:
        cells = []
        for c in concurrency:
            raw = next((r for r in levels if r.system == RAW and r.concurrency == c), None)
            row = next((r for r in levels if r.system == system and r.concurrency == c), None)
            cells.append(f"{row.tokens_per_second / raw.tokens_per_second:.2f}"
                         if row and raw else "-")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


CPU_NOTE = ("CPU milliseconds per output token, user + system, all threads: the serving "
            "process, its engine process (ovserve) and the load generator, which for the raw "
            "engine is the engine itself. All of them share the same cores, so a server's and a "
            "client's CPU per token is taken from the engine's time.")


def cpu_table(levels: list[LevelResult]) -> str:
    rows = ["| system | conc. | server | engine | client | total |", "|---|---|---|---|---|---|"]
    for r in levels:
        cpu = r.cpu_ms_per_token
        if not cpu:
            continue
        cells = [f"{cpu[role]:.2f}" if role in cpu else "-" for role in ROLES]
        rows.append(f"| {r.system} | {r.concurrency} | " + " | ".join(cells)
                    + f" | {sum(cpu.values()):.2f} |")
    return "\n".join(rows)


PLOTS = ("throughput.png", "ttft_p50.png", "tpot_p50.png")


def plot(levels: list[LevelResult], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r.system for r in levels})
    files = []
    metrics: list[tuple[Callable[[LevelResult], float], str, str, str]] = [
        (lambda r: r.tokens_per_second, "output tokens/s", PLOTS[0], "linear"),
        (lambda r: r.ttft["p50"] * 1e3, "TTFT p50 (ms, log scale)", PLOTS[1], "log"),
        (lambda r: r.tpot["p50"] * 1e3, "TPOT p50 (ms, log scale)", PLOTS[2], "log"),
    ]
    for key, label, name, yscale in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.set_yscale(yscale)
        for system in systems:
            rows = sorted((r for r in levels if r.system == system), key=lambda r: r.concurrency)
            ax.plot([r.concurrency for r in rows], [key(r) for r in rows], marker="o",
                    label=system)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


async def measure(args: argparse.Namespace, systems: list[System],
                  before_run: tuple[float, float, float]
                  ) -> tuple[list[LevelResult], list[dict[str, Any]]]:
    """Every level of every system, and each level's trust verdict (load, steal, raw spread)."""
    levels = []
    verdicts = []
    for concurrency in args.concurrency:
        probe = LoadProbe()
        rounds: dict[str, list[LevelResult]] = {}
        for round_ in range(max(s.rounds for s in systems)):
            for system in systems:
                if round_ >= system.rounds:
                    continue
                requests = max(args.min_requests, 2 * concurrency)
                pid = system.server.process.pid if system.server else None
                result = await run_level(system.target, concurrency, requests, args.max_tokens,
                                         server_pid=pid)
                print(f"{system.target.name:>42} c={concurrency:<3} round {round_ + 1} "
                      f"{result.tokens_per_second:6.0f} tok/s  TTFT p50 "
                      f"{result.ttft['p50'] * 1e3:5.0f} ms  errors {result.errors}", flush=True)
                rounds.setdefault(system.target.name, []).append(result)
        levels += [merge(results) for results in rounds.values()]
        raw_rounds = [r.tokens_per_second for r in rounds.get(RAW, [])]
        verdicts.append(verdict(concurrency, raw_rounds, probe.finish(), before_run))
        flagged = verdicts[-1]
        print(f"c={concurrency}: " + ("trustworthy" if flagged["trustworthy"] else
                                      "NOT trustworthy: " + "; ".join(flagged["problems"])),
              flush=True)
    for system in systems:
        close = getattr(system.target, "close", None)
        if close is not None:
            await close()
    return levels, verdicts


def default_gguf(model: Path) -> Path:
    """The GGUF llama.cpp runs beside ``model``: for a folder make_shaped_model.py wrote, the
    GGUF it wrote with it; otherwise the built-in model's."""
    from ovserve.toolchain import provenance
    from ovserve.toolchain.catalog import BUILTIN_MODELS
    from ovserve.toolchain.gguf_source import fetch_gguf

    source = str(provenance.read(model).get("source", ""))
    if source.startswith("shaped:"):
        made = sorted(model.parent.glob(source.removeprefix("shaped:") + ".*.gguf"))
        if not made:
            raise SystemExit(f"{model} was made by make_shaped_model.py, but no GGUF of it is "
                             f"next to it; pass --gguf")
        return made[0]
    return fetch_gguf(BUILTIN_MODELS[MODEL_ID])


def server_config(model: Path, logs: Path) -> Path:
    """servables/config.json on the built-in model; for another model a config in ``logs`` with
    the same LLM graph (graphs/llm, its models_path pointed at ``model``) served under the
    same name, and the gRPC stream servable (which reads OVSERVE_MODEL_PATH)."""
    if model.resolve() == (REPO / "models" / MODEL_ID).resolve():
        return REPO / "servables/config.json"
    graph = (REPO / "graphs/llm/graph.pbtxt").read_text()
    folder = json.dumps(str(model.resolve()))  # the graph resolves a relative path from logs
    pointed = graph.replace('"../../models/smollm2-135m-instruct"', folder)
    if pointed == graph:
        raise SystemExit("graphs/llm/graph.pbtxt no longer names the built-in model's folder")
    (logs / "llm").mkdir(parents=True, exist_ok=True)
    (logs / "llm" / "graph.pbtxt").write_text(pointed)
    config = logs / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "python_model", "base_path": str(REPO / "servables/servable_stream")},
        {"name": MODEL_ID, "base_path": str(logs / "llm")}]}, indent=2))
    return config


def start_systems(args: argparse.Namespace, logs: Path) -> tuple[list[System], list[Process],
                                                                  list[str]]:
    systems: list[System] = []
    processes: list[Process] = []
    notes: list[str] = []
    config = server_config(args.model, logs)
    if config != REPO / "servables/config.json":
        notes.append(f"model {args.model} served under the name {MODEL_ID} by {config}")
    # every system generates exactly max_tokens (ignore_eos), so tokens/s compare like for like
    env = {"OVSERVE_MAX_TOKENS": str(args.max_tokens), "OVSERVE_MODEL_PATH": str(args.model),
           "OVSERVE_IGNORE_EOS": "1"}
    wanted = set(args.systems)
    if "raw" in wanted:
        systems.append(System(RawEngineTarget(args.model), args.rounds))
    if wanted & {"sse", "grpc"}:
        server = start_ovserve("ovserve", config, logs / "ovserve.log", env)
        processes.append(server)
        if "sse" in wanted:
            systems.append(System(OpenAIChatTarget(SSE, f"{server.rest_url}/v1", MODEL_ID,
                                                   extra={"ignore_eos": True}),
                                  args.rounds, server))
        if "grpc" in wanted:
            systems.append(System(GrpcStreamTarget(GRPC, server.grpc_url), args.rounds, server))
    if "sse-pl" in wanted:  # the same server with prompt lookup decoding on every CPU engine
        server = start_ovserve("ovserve-pl", config, logs / "ovserve-pl.log", env,
                               "--plugin_config", json.dumps({"CPU": {"prompt_lookup": True}}))
        processes.append(server)
        systems.append(System(OpenAIChatTarget(SSE_PL, f"{server.rest_url}/v1", MODEL_ID,
                                               extra={"ignore_eos": True}),
                              args.rounds, server))
        notes.append("prompt lookup: ovserve with --plugin_config "
                     "'{\"CPU\": {\"prompt_lookup\": true}}' and the default "
                     "num_assistant_tokens 1, max_ngram_size 3")
    if "xllamacpp" in wanted:
        if args.xllamacpp_python.is_file():
            gguf = args.gguf or default_gguf(args.model)
            server = start_xllamacpp(args.xllamacpp_python, gguf, logs / "xllamacpp.log",
                                     threads=os.cpu_count() or 2)
            processes.append(server)
            # llama.cpp's server takes ignore_eos too: every system generates max_tokens
            systems.append(System(OpenAIChatTarget(XLLAMA, f"{server.rest_url}/v1", MODEL_ID,
                                                   extra={"ignore_eos": True}, keepalive=False),
                                  args.rounds, server))
            notes.append(f"llama.cpp's own server (xllamacpp) on {gguf.name}, 8 parallel "
                         f"slots, continuous batching, {os.cpu_count()} threads; a new "
                         "connection per request (its HTTP server drops idle keep-alive "
                         "connections, which the client would otherwise reuse and fail on)")
        else:
            notes.append(f"xllamacpp not measured: {args.xllamacpp_python} does not exist "
                         "(`make bench` builds it)")
    if "llamacpp" in wanted:
        if args.llamacpp_python.is_file():
            gguf = args.gguf or default_gguf(args.model)
            server = start_llamacpp(args.llamacpp_python, gguf, logs / "llamacpp.log",
                                    threads=os.cpu_count() or 2)
            processes.append(server)
            systems.append(System(OpenAIChatTarget(LLAMA, f"{server.rest_url}/v1", MODEL_ID),
                                  1, server))
            notes.append(f"llama-cpp-python server on {gguf.name} (the GGUF the model is "
                         f"built from), {os.cpu_count()} threads, one request at a time "
                         "(--interrupt_requests False: by default a new request cuts off the "
                         "one being streamed)")
        else:
            notes.append(f"llama-cpp-python not measured: {args.llamacpp_python} does not "
                         "exist (`make bench` builds it)")
    if "seed" in wanted:
        server = start_ovserve("seed approach", REPO / "benchmarks/seed_approach/config.json",
                               logs / "seed_approach.log", env)
        processes.append(server)
        systems.append(System(GrpcStreamTarget(SEED, server.grpc_url), 1, server))
    return systems, processes, notes


def weights(model: Path) -> str:
    """The model folder's weight format, as its ovserve_model.json records it."""
    from ovserve.toolchain import provenance

    return str(provenance.read(model).get("weight_format", "?"))


def describe_machine(found: dict[str, Any]) -> str:
    return ", ".join(f"{k} {' '.join(v) if isinstance(v, list) else v}"
                     for k, v in found.items())


def derive(report: dict[str, Any], levels: list[LevelResult]) -> dict[str, Any]:
    """The report's figures derived from its measurements (each level's fraction of the
    bandwidth limit, the targets), by today's rules: ``--report-only`` re-derives them."""
    source = report.get("model_source") or (
        f"builtin:{MODEL_ID}" if report.get("model") == MODEL_ID else "")
    found = fractions(levels, report.get("weight_bytes") or {},
                      report["machine"].get("bandwidth_gbps"))
    report["bandwidth_fraction"] = found
    report["targets"] = targets_check(levels, report.get("trust", []), source, found)
    return report


def write_report(report: dict[str, Any], levels: list[LevelResult], out: Path) -> str:
    """serving.json, serving.md and the plots; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        plots = plot(levels, out)
    except ImportError:  # matplotlib (requirements/bench.txt): keep the plots drawn before
        plots = [name for name in PLOTS if (out / name).is_file()]
        print(f"matplotlib is not installed: the plots in {out} are not redrawn",
              file=sys.stderr)
    found = report.get("bandwidth_fraction") or []
    bandwidth = report.get("bandwidth")
    measured = (f"Memory read bandwidth {bandwidth['gbps']} GB/s, measured before the levels "
                f"by benchmarks/bandwidth.py ({bandwidth['method']}; {bandwidth['processes']} "
                f"processes x {bandwidth['mib_per_process']} MiB, {bandwidth['repeats']} "
                "repeats)." if bandwidth else "")
    raw = report.get("raw_engine") or {}
    lines = [f"# ovserve side by side ({report['date']}, {report['minutes']:.0f} min)", "",
             f"Model {report['model']} ({report.get('weights', 'int8')} OpenVINO IR; llama.cpp: "
             f"{report.get('gguf') or 'the Q4_1 GGUF it is built from'}), "
             f"{report['max_tokens']} output tokens per request, distinct prompts, "
             f"greedy, closed loop, at least {report['min_requests']} and 2 x concurrency "
             f"requests per round; raw engine and ovserve: {report['rounds']} rounds per level, "
             "interleaved, pooled (xllamacpp too); llama-cpp-python and the seed's approach: one "
             "round.", "",
             "Machine: " + describe_machine(report["machine"]), "",
             *([measured, ""] if measured else []),
             *([f"Raw engine's OpenVINO properties: {json.dumps(raw.get('properties'))}"
                + (f" ({raw['note']})" if raw.get("note") else ""), ""] if raw else []),
             *[f"- {note}" for note in report["notes"]], "",
             *trust_section(report.get("trust", [])),
             "## Throughput relative to the raw engine", "", ratio_table(levels), "",
             "## Fraction of the memory-bandwidth limit", "", FRACTION_NOTE, "",
             fraction_table(found) if found else
             "Not recorded in this run (no bandwidth measurement or weight sizes).", "",
             "## All measurements", "", summary_table(levels), "",
             "## Where the CPU goes", "", CPU_NOTE, "", cpu_table(levels), "",
             "## Targets", "",
             "Issue 29's goals, each a ratio in this one run; a check counts only when every "
             "level it uses is trustworthy. " + targets_summary(report["targets"]), ""]
    for check in report["targets"]:
        lines.append(f"- {check['target']}: {check['value']} ({check_state(check)})"
                     + (f" - {check['note']}" if check.get("note") else ""))
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    markdown = "\n".join(lines)
    (out / "serving.md").write_text(markdown)
    return markdown


def report_from_json(out: Path) -> tuple[dict[str, Any], list[LevelResult]]:
    """An earlier run's report, to re-render it (``--report-only``)."""
    report = json.loads((out / "serving.json").read_text())
    names = {f.name for f in dataclasses.fields(LevelResult)} - {"results"}
    levels = [LevelResult(**{k: v for k, v in row.items() if k in names})
              for row in report["levels"]]
    return report, levels


def default_out(model: Path, root: Path = families.RESULTS) -> Path:
    """benchmarks/results/serving/<this CPU's family>-<the model folder's name>."""
    cpu, isa = families.cpu_model(), families.isa_flags()
    return families.results_dir(families.family(cpu, isa), model.resolve().name, root)


def committed(out: Path) -> bool:
    """Whether ``out`` is one of the committed results the README's table is rendered from."""
    return out.resolve().parent == families.RESULTS.resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(parser)
    parser.add_argument("--gguf", type=Path, default=None,
                        help="the GGUF the llama.cpp systems run (default: the one "
                        "make_shaped_model.py wrote beside --model, else the built-in model's)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--min-requests", type=int, default=32,
                        help="requests per round and level, at least (default 32)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the raw engine and ovserve per level (default 3, the "
                        "least that shows whether the raw engine was steady)")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--llamacpp-python", type=Path,
                        default=REPO / ".venv-llamacpp" / "bin" / "python")
    parser.add_argument("--xllamacpp-python", type=Path,
                        default=REPO / ".venv-xllamacpp" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=None,
                        help="where serving.{md,json} and the plots go (default: "
                        "benchmarks/results/serving/<CPU family>-<model folder>, e.g. "
                        "amd-epyc-avx512_bf16-smollm2-135m-instruct; runs there also update the "
                        "README's table of results by CPU family)")
    parser.add_argument("--quiet-wait", type=float, default=180,
                        help="wait up to this many seconds for the load average to settle "
                        "before starting (default 180)")
    parser.add_argument("--bandwidth-mib", type=int, default=membw.DEFAULT_MIB,
                        help="MiB each bandwidth reader sums (default "
                        f"{membw.DEFAULT_MIB}; far above the last-level cache)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render serving.md and the plots from serving.json (--out's, "
                        "else every committed result's), re-deriving the bandwidth fractions "
                        "and the targets, and the README's table of results by CPU family")
    args = parser.parse_args()
    if args.rounds < 3 and "raw" in args.systems:
        print("note: fewer than 3 rounds cannot show whether the raw engine was steady",
              file=sys.stderr)

    if args.report_only:
        outs = ([args.out] if args.out else
                sorted(p.parent for p in families.RESULTS.glob("*/serving.json")))
        for out in outs:
            report, levels = report_from_json(out)
            print(write_report(derive(report, levels), levels, out))
        if not args.out or committed(args.out):
            print("README.md " + ("updated" if families.update_readme() else "unchanged"))
        return 0
    out = args.out or default_out(args.model)
    # the machine before the benchmark loads it (starting the servers is heavy work)
    before_run = wait_until_quiet(args.quiet_wait)
    started = time.time()
    bandwidth = membw.measure(mib=args.bandwidth_mib)  # quiet: before any server starts
    print(f"memory read bandwidth {bandwidth.gbps} GB/s ({bandwidth.processes} processes)",
          flush=True)
    gguf = (args.gguf or default_gguf(args.model)
            if {"xllamacpp", "llamacpp"} & set(args.systems) else None)
    systems, processes, notes = start_systems(args, out / "raw")
    raw = next((s.target for s in systems if isinstance(s.target, RawEngineTarget)), None)
    try:
        levels, trust = asyncio.run(measure(args, systems, before_run))
    finally:
        for process in processes:
            process.stop()
    report = {"date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
              "minutes": round((time.time() - started) / 60, 1),
              "machine": machine(bandwidth), "bandwidth": bandwidth.as_dict(),
              "load_before_run": list(before_run),
              "model": args.model.resolve().name, "model_source": model_source(args.model),
              "weights": weights(args.model), "gguf": gguf.name if gguf else None,
              "weight_bytes": weight_bytes(args.model, gguf),
              "raw_engine": {"properties": getattr(raw, "properties", None),
                             "note": getattr(raw, "properties_note", None)} if raw else None,
              "max_tokens": args.max_tokens, "rounds": args.rounds,
              "min_requests": args.min_requests, "notes": notes, "trust": trust,
              "levels": [r.as_dict() for r in levels]}
    print(write_report(derive(report, levels), levels, out))
    if committed(out):
        print("README.md " + ("updated" if families.update_readme() else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
