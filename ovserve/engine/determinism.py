"""Deterministic mode: a request's tokens do not depend on what else the engine runs.

By default, greedy output is reproducible only for a request run the same way: continuous
batching, the prefix cache and the CPU's kernels change near-tie tokens (vLLM's output has the
same property; it has a batch-invariant mode for users who need more). Measured with
openvino-genai 2026.4.1 on SmolLM2-135M int8, the same greedy request alone, again after its
prompt was cached, beside others, joining running ones and as copies sent together:

- an Intel Xeon with AMX (bf16 by default): batches changed the text, and so did a cached
  prompt; prefix caching off removed the latter;
- an AMD EPYC (AVX-512) with ``INFERENCE_PRECISION_HINT: f32``: the int8 weights run the
  dynamic-quantization kernels, whose activation scales span the batch, and batches changed
  the text; f32 without dynamic quantization kept it under AVX-512 kernels, but not under
  oneDNN's AVX2 kernels (copies sent together parted from the request alone).

No precision makes OpenVINO's kernels batch-invariant on every CPU, so the mode does not batch:
the engine runs one sequence at a time (``max_num_seqs`` 1) and a step either prefills one whole
prompt or decodes (no split-fuse: with it, a waiting prompt's prefill shared the running
request's steps, which changed its text under AVX2 kernels even one sequence at a time); each
request's steps then have the same shapes whatever else waits, and the prefix cache is off. The
precision is not changed (the graph's, ``--plugin_config``'s or the CPU table's, as without the
mode). It costs throughput with several clients (they queue; one stream
runs as fast as before): ``benchmarks/deterministic.py`` measures it (README, "Reproducibility").
What it promises: on one machine and one ovserve and OpenVINO version, the same request
(prompt, parameters, seed) gives the same tokens, whatever else runs. Not across CPUs.
"""

from __future__ import annotations

from typing import Any

#: sequences a deterministic engine runs at a time
MAX_NUM_SEQS = 1
#: tokens of one step without split-fuse: a whole prompt is prefilled in one step
MAX_PROMPT_TOKENS = 131072


def schedule(scheduler: Any) -> None:
    """Make an ``openvino_genai.SchedulerConfig`` deterministic: one sequence at a time, a step
    prefills one whole prompt or decodes, never both, and no prefix cache."""
    scheduler.max_num_seqs = MAX_NUM_SEQS
    scheduler.dynamic_split_fuse = False
    scheduler.max_num_batched_tokens = max(scheduler.max_num_batched_tokens, MAX_PROMPT_TOKENS)
    scheduler.enable_prefix_caching = False

