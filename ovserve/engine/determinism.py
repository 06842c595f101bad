"""Deterministic mode: a request's tokens do not depend on what else the engine runs.

By default, greedy output is reproducible only for a request run the same way: continuous
batching, the prefix cache and the CPU's kernels change near-tie tokens (vLLM's output has the
same property; it has a batch-invariant mode for users who need more). Measured with
openvino-genai 2026.4.1 on SmolLM2-135M int8 (the same greedy request alone, again after its
prompt was cached, beside 7 others, joining 7 running ones, 5 copies at once):

- with ``INFERENCE_PRECISION_HINT: f32`` the int8 weights run the dynamic-quantization kernels,
  whose activation scales span the batch: the text changed with the batch (AMD EPYC, AVX-512);
- with the CPU's default precision on an Intel Xeon with AMX (bf16), batches changed it and a
  cached prompt did too; prefix caching off removed the latter;
- with f32 and dynamic quantization off (``DYNAMIC_QUANTIZATION_GROUP_SIZE: 0``), every case
  gave the same tokens, under oneDNN's AVX-512 and AVX2 kernels alike.

So the mode runs f32 without dynamic quantization, with the prefix cache off, and prefills each
prompt whole (no split of a prompt across steps by what else is scheduled). It costs speed:
``benchmarks/deterministic.py`` measures it beside the default (README, "Reproducibility").
What it promises: on one machine and one ovserve and OpenVINO version, the same request
(prompt, parameters, seed) gives the same tokens, whatever else runs. Not across CPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: OpenVINO properties of a deterministic engine (laid over the graph's plugin_config)
PROPERTIES: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32",
                              "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}


def plugin_config(given: Mapping[str, Any], deterministic: bool) -> dict[str, Any]:
    """The properties an engine is compiled with: ``given``, with PROPERTIES over them in
    deterministic mode (a different value given for one of them is replaced, and logged)."""
    out = dict(given)
    if not deterministic:
        return out
    for name, value in PROPERTIES.items():
        if name in out and str(out[name]).lower() != str(value).lower():
            log.warning("deterministic mode: %s=%r replaced by %r", name, out[name], value)
        out[name] = value
    return out
