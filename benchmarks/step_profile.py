"""Where a decode step's time goes (issue 29: is a 135M model's step its kernels or per-op
overhead?).

Two views, on a quiet machine (it loads the model and runs it):

1. openvino-genai's own split of the continuous-batching pipeline's steps
   (``perf_metrics.raw_metrics`` of one greedy request): the whole step, the model's forward
   pass and the sampler, per generated token. Step minus forward minus sampler is the
   scheduler's and the pipeline's own work.
2. Per-node time of the same graph: the IR turned into its paged-attention form as
   openvino-genai turns it, compiled with ``PERF_COUNT`` (the pipeline gives Python no handle on
   its infer request) and stepped one token at a time from an empty cache, as a decode step runs.
   Node times are summed by (node type, kernel); the mean infer time minus the sum of node
   times is the graph's own overhead (dynamic shapes, thread hand-offs). ``--stateful`` also
   times the untransformed stateful graph (SDPA), what openvino-genai's LLMPipeline runs.

    python -m benchmarks.step_profile [--model DIR] [--tokens 256] [--properties JSON]

The properties default to what an ovserve engine on this CPU gets (the CPU table's row), as the
side-by-side benchmark's raw engine does. The report says whether the machine was quiet
(``benchmarks/honesty``'s load and steal rules; there are no raw-engine rounds to compare here):
a figure counts only from a quiet machine, and only for the CPU family it ran on.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.honesty import MAX_LOAD_PER_CORE, MAX_STEAL, Load, LoadProbe  # noqa: E402
from benchmarks.loadgen import add_model_argument, server_properties  # noqa: E402
from ovserve.engine.cpu_properties import this_cpu  # noqa: E402

BLOCK_SIZE = 32  # openvino-genai's KV-cache block on CPU
PROMPT = "Write a long story about a lighthouse keeper and the sea."


def pipeline_split(model: Path, properties: dict[str, Any], tokens: int) -> dict[str, float]:
    """ms per generated token: openvino-genai's step (median), forward pass and sampler
    (means: the releases sum these or give them per step)."""
    import openvino_genai as og

    from ovserve.engine.base import EngineConfig
    from ovserve.engine.process import scheduler_config

    pipe = og.ContinuousBatchingPipeline(
        str(model), scheduler_config(EngineConfig(models_path=model)), "CPU", properties)
    config = og.GenerationConfig(max_new_tokens=tokens, ignore_eos=True)
    pipe.generate([PROMPT], [config])  # warm-up
    raw = pipe.generate([PROMPT], [config])[0].perf_metrics.raw_metrics
    steps = [d / 1000 for d in raw.token_infer_durations][1:]  # microseconds; not the prefill
    forward = [d / 1000 for d in raw.inference_durations]
    sampler = [d / 1000 for d in raw.sampling_durations]
    out = {"step_ms": statistics.median(steps), "steps": len(steps)}
    out["forward_ms"] = sum(forward) / len(raw.token_infer_durations)
    if sampler:
        out["sampler_ms"] = sum(sampler) / len(raw.token_infer_durations)
    return out


def _paged_inputs(pos: int, token: int) -> dict[str, Any]:
    import numpy as np

    blocks = pos // BLOCK_SIZE + 1
    return {"input_ids": np.array([token], np.int64),
            "position_ids": np.array([pos], np.int64),
            "past_lens": np.array([pos], np.int32),
            "subsequence_begins": np.array([0, 1], np.int32),
            "block_indices": np.arange(blocks, dtype=np.int32),
            "block_indices_begins": np.array([0, blocks], np.int32),
            "max_context_len": np.array(pos + 1, np.int32),
            "score_aggregation_window": np.array([1], np.int32)}


def _stateful_inputs(pos: int, token: int) -> dict[str, Any]:
    import numpy as np

    return {"input_ids": np.array([[token]], np.int64),
            "attention_mask": np.ones((1, pos + 1), np.int64),
            "position_ids": np.array([[pos]], np.int64),
            "beam_idx": np.array([0], np.int32)}


def node_profile(model: Path, properties: dict[str, Any], tokens: int,
                 paged: bool = True) -> dict[str, Any]:
    """Mean infer ms of one decode token and node time by (type, kernel) per infer, from a
    graph stepped token by token (the first quarter of the tokens not counted)."""
    import openvino as ov
    from openvino._offline_transformations import paged_attention_transformation

    core = ov.Core()
    graph = core.read_model(str(model / "openvino_model.xml"))
    if paged:  # as openvino-genai builds its continuous-batching model
        paged_attention_transformation(graph, False, False, True)
    compiled = core.compile_model(graph, "CPU", {**properties, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    names = {port.get_any_name() for port in compiled.inputs}
    if paged:
        blocks = (tokens + 2) // BLOCK_SIZE + 2
        for port in compiled.inputs:
            name = port.get_any_name()
            if name.startswith(("key_cache.", "value_cache.")):
                shape = port.get_partial_shape()
                dims = [blocks] + [shape[k].get_length() for k in range(1, shape.rank.get_length())]
                request.set_tensor(name, ov.Tensor(port.get_element_type(), dims))
    else:
        request.reset_state()
    feed_of = _paged_inputs if paged else _stateful_inputs
    walls: list[float] = []
    token = 1
    vocab = int(compiled.outputs[0].get_partial_shape()[-1].get_length())
    skip = tokens // 4  # the first tokens' infers (the first blocks) are not counted
    share = 1 / (tokens - skip)  # each counted infer's part of the per-infer means
    by_kind: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    by_node: dict[str, float] = collections.defaultdict(float)
    for pos in range(tokens):
        feed = {k: v for k, v in feed_of(pos, token).items() if k in names}
        unfed = {n for n in names - set(feed) if "_cache." not in n}
        if unfed:
            raise SystemExit(f"step_profile: inputs this script does not feed: {sorted(unfed)}")
        for name, value in feed.items():
            request.set_tensor(name, ov.Tensor(value))
        started = time.perf_counter()
        request.infer()
        walls.append(time.perf_counter() - started)
        token = int(request.get_output_tensor(0).data.reshape(-1)[-vocab:].argmax())
        if pos >= skip:  # the counters are the last infer's: summed here, outside the timing
            for info in request.get_profiling_info():
                if info.status == ov.ProfilingInfo.Status.EXECUTED:
                    ms = info.real_time.total_seconds() * 1e3 * share
                    entry = by_kind[(info.node_type, info.exec_type)]
                    entry[0] += ms
                    entry[1] += share
                    by_node[info.node_name] += ms
    nodes_ms = sum(ms for ms, _ in by_kind.values())
    # node times are means over the counted infers, so the overhead is taken from the mean too
    infer_ms = statistics.fmean(walls[skip:]) * 1e3
    return {"graph": "paged" if paged else "stateful", "infer_ms": infer_ms,
            "infer_median_ms": statistics.median(walls[skip:]) * 1e3,
            "nodes_ms": nodes_ms, "overhead_ms": infer_ms - nodes_ms,
            # nodes executed per infer (a node some shapes skip counts in part)
            "nodes": round(sum(n for _, n in by_kind.values()), 1),
            "by_kind": [{"node_type": t, "kernel": k, "count": round(n, 2), "ms": ms}
                        for (t, k), (ms, n) in sorted(by_kind.items(), key=lambda kv: -kv[1][0])],
            "slowest_nodes": [{"node": name, "ms": ms} for name, ms in
                              sorted(by_node.items(), key=lambda kv: -kv[1])[:12]]}


def quiet(load: Load) -> bool:
    """The machine was quiet by the benchmarks' rules (load before, steal during)."""
    cores = os.cpu_count() or 1
    return load.load_before[0] / cores <= MAX_LOAD_PER_CORE and load.steal <= MAX_STEAL


def conditions(load: Load, family: str) -> str:
    """The run's load, and whether its figures count."""
    verdict = ("a quiet machine" if quiet(load) else
               "NOT a quiet machine: shown, not claimed")
    return (f"load average {load.load_before[0]:.2f} before, {load.load_after[0]:.2f} after, "
            f"steal {load.steal:.1%}: {verdict}; figures hold only for this CPU family "
            f"({family})")


def report(split: dict[str, float] | None, profiles: list[dict[str, Any]], top: int) -> str:
    lines = []
    if split:
        lines.append(f"pipeline: step {split['step_ms']:.2f} ms per token, forward "
                     f"{split['forward_ms']:.2f}, sampler {split.get('sampler_ms', 0):.2f} "
                     f"(median of {split['steps']} steps)")
    for p in profiles:
        lines.append(f"{p['graph']} graph: infer {p['infer_ms']:.2f} ms (mean; median "
                     f"{p['infer_median_ms']:.2f}), nodes {p['nodes_ms']:.2f} ms in {p['nodes']} "
                     f"nodes, graph overhead {p['overhead_ms']:.2f} ms")
        for row in p["by_kind"][:top]:
            per_node = row["ms"] * 1e3 / max(row["count"], 0.01)
            lines.append(f"  {row['node_type']:<28} {row['kernel']:<34} n={row['count']:<6g} "
                         f"{row['ms']:6.3f} ms  {per_node:6.1f} us/node")
        lines.append("  slowest nodes: " + ", ".join(
            f"{n['node'].rsplit('/', 2)[-2] if n['node'].count('/') > 1 else n['node']} "
            f"{n['ms']:.3f}" for n in p["slowest_nodes"][:top]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_profile",
                                     description=__doc__.split("\n\n")[0])
    add_model_argument(parser)
    parser.add_argument("--tokens", type=int, default=256, help="decode tokens per view")
    parser.add_argument("--properties", type=json.loads, default=None,
                        help="CPU properties as JSON (default: what ovserve's engine gets here)")
    parser.add_argument("--stateful", action="store_true",
                        help="also profile the stateful SDPA graph (LLMPipeline's)")
    parser.add_argument("--no-pipeline", action="store_true",
                        help="skip openvino-genai's own split")
    parser.add_argument("--top", type=int, default=15, help="rows of node kinds shown")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    model = Path(args.model)
    properties = (args.properties if args.properties is not None
                  else server_properties()[0])
    cpu = this_cpu()
    print(f"CPU {cpu.model} ({cpu.family}); properties {properties}", flush=True)
    probe = LoadProbe()
    split = None if args.no_pipeline else pipeline_split(model, properties, args.tokens)
    profiles = [node_profile(model, properties, args.tokens)]
    if args.stateful:
        profiles.append(node_profile(model, properties, args.tokens, paged=False))
    load = probe.finish()
    print(report(split, profiles, args.top))
    print(conditions(load, cpu.family))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu.model, "family": cpu.family,
                                         "properties": properties, "load": asdict(load),
                                         "quiet": quiet(load), "pipeline": split,
                                         "profiles": profiles}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
