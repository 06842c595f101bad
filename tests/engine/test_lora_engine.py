"""Many LoRA adapters in one openvino-genai engine, on the real model: requests for different
adapters share engine steps and each gets exactly its adapter's output; slot changes and
unloads never fail a running request."""

from __future__ import annotations

import math
import time
from pathlib import Path

import psutil
import pytest

from ovserve.engine.base import EngineConfig, LoraOptions, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from ovserve.errors import AdapterNotFound
from tests.conftest import generation_overrides, plugin_config
from tests.engine.lora_files import write_adapter

#: pinned on purpose (bf16 noise would blur the comparisons); OVSERVE_PLUGIN_CONFIG still
#: goes over it (``plugin_config(F32)``), and the comparisons allow for its noise
F32 = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPTS = ["The theory of relativity", "Name three colours:", "Once upon a time"]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loras")
    for seed, name in enumerate(("alpha", "beta")):
        write_adapter(root / name, seed=seed, spread=0.08)
    return root


def generate(engine: OpenVINOEngine, cases: list[tuple[str, str | None]], tokens: int
             ) -> list[tuple[list[int], list[float]]]:
    """Greedy tokens of every case and their logprobs, all submitted together (they share
    engine steps)."""
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True,
                            apply_chat_template=False, logprobs=True)
    prepared = [engine.prepare(p, params, adapter=a) for p, a in cases]
    out: list[tuple[list[int], list[float]]] = [([], []) for _ in cases]
    for update in engine.submit_batch(prepared).updates():
        for index, delta in enumerate(update):
            if delta is not None:
                out[index][0].extend(delta.token_ids)
                out[index][1].extend(delta.logprobs)
    return out


def noise(config: EngineConfig) -> float:
    """How far (nats) one greedy token's logprob may move between two batch compositions:
    f32 kernels differ in the last bits (the int8 weights' dynamic quantization a little
    more), bf16 ones (OVSERVE_PLUGIN_CONFIG may ask for them) by up to tenths."""
    return 0.05 if config.plugin_config.get("INFERENCE_PRECISION_HINT") == "f32" else 0.3


def assert_same_up_to_a_tie(a: tuple[list[int], list[float]], b: tuple[list[int], list[float]],
                            tol: float) -> None:
    """Two greedy runs of one request agree token by token, their logprobs within ``tol``,
    until they first differ; there both tokens are near-tied top tokens (logprobs within
    ``tol`` of each other and no more likely than 1/2 + noise). A wrong adapter's rows move
    the logprobs by whole nats. Nothing is compared after a split (the contexts differ)."""
    (a_ids, a_lps), (b_ids, b_lps) = a, b
    assert len(a_ids) == len(a_lps) == len(b_ids) == len(b_lps)
    for i, (x, y) in enumerate(zip(a_ids, b_ids, strict=True)):
        assert abs(a_lps[i] - b_lps[i]) <= tol, (i, a, b)
        if x != y:
            assert max(a_lps[i], b_lps[i]) <= math.log(0.5) + tol, (i, a, b)
            return


def test_mixed_batch_gives_each_request_its_own_adapter(default_model_dir: Path,
                                                       lora_dir: Path) -> None:
    """Base and two adapters in the same engine steps give what each gives alone (an adapter
    leaking into another request's rows would show), up to the kernels' noise: the same
    tokens and logprobs until a near-tie, if any. Correctness against transformers + peft:
    test_lora_peft.py."""
    config = EngineConfig(default_model_dir, plugin_config=plugin_config(F32),
                          generation_overrides=generation_overrides(),
                          lora=LoraOptions(dirs=(lora_dir,)))
    engine = OpenVINOEngine(config)
    try:
        cases = [(p, a) for p in PROMPTS[:2] for a in (None, "alpha", "beta")]
        mixed = generate(engine, cases, 12)
        alone = [generate(engine, [case], 12)[0] for case in cases]
    finally:
        engine.close()
    assert all(len(ids) == len(logprobs) == 12 for ids, logprobs in mixed)
    for case, together, by_itself in zip(cases, mixed, alone, strict=True):
        assert all(p <= 0 for p in together[1]), case
        assert_same_up_to_a_tie(together, by_itself, noise(config))
    outputs = dict(zip(cases, mixed, strict=True))
    for prompt in PROMPTS[:2]:  # each adapter changes the output: other tokens or logprobs
        base_ids, base_logprobs = outputs[(prompt, None)]
        for adapter in ("alpha", "beta"):
            ids, logprobs = outputs[(prompt, adapter)]
            assert ids != base_ids or max(abs(x - y) for x, y in zip(
                logprobs, base_logprobs, strict=True)) > 10 * noise(config), (prompt, adapter)


def test_slot_change_and_unload_let_running_requests_finish(default_model_dir: Path,
                                                           lora_dir: Path) -> None:
    engine = OpenVINOEngine(EngineConfig(default_model_dir, plugin_config=plugin_config(),
                                         generation_overrides=generation_overrides(),
                                         lora=LoraOptions(dirs=(lora_dir,), max_loras=1)))
    try:
        long = SamplingParams(max_tokens=150, ignore_eos=True)
        first_pid = engine.pid
        running = engine.submit(engine.prepare(PROMPTS[0], long, adapter="alpha"))
        stream = running.deltas()
        reasons = [next(stream).finish_reason]  # it runs on the first engine process
        # beta needs the only slot: a new engine process takes new requests
        other = engine.submit(engine.prepare(PROMPTS[1], SamplingParams(
            max_tokens=20, ignore_eos=True), adapter="beta"))
        assert engine.pid != first_pid
        assert [d.finish_reason for d in other.deltas()][-1] == "length"
        assert other.completion_tokens == 20
        engine.unload_adapter("alpha")
        reasons += [d.finish_reason for d in stream]
        assert running.completion_tokens == 150 and reasons[-1] == "length"
        deadline = time.monotonic() + 30  # the retired process exits once it is idle
        while psutil.pid_exists(first_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(first_pid) or \
            psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(AdapterNotFound):
            engine.prepare(PROMPTS[0], long, adapter="alpha")
        assert engine.stats().active_requests == 0
    finally:
        engine.close()
