"""Many LoRA adapters in one openvino-genai engine, on the real model: requests for different
adapters share engine steps and each gets exactly its adapter's output; slot changes and
unloads never fail a running request."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from ovserve.engine.base import EngineConfig, LoraOptions, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from ovserve.errors import AdapterNotFound
from tests.engine.lora_files import write_adapter

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPTS = ["The theory of relativity", "Name three colours:", "Once upon a time"]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loras")
    for seed, name in enumerate(("alpha", "beta")):
        write_adapter(root / name, seed=seed, spread=0.08)
    return root


def generate(engine: OpenVINOEngine, cases: list[tuple[str, str | None]], tokens: int
             ) -> list[list[int]]:
    """Greedy tokens of every case, all submitted together (they share engine steps)."""
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True,
                            apply_chat_template=False)
    prepared = [engine.prepare(p, params, adapter=a) for p, a in cases]
    out: list[list[int]] = [[] for _ in cases]
    for update in engine.submit_batch(prepared).updates():
        for index, delta in enumerate(update):
            if delta is not None:
                out[index] += delta.token_ids
    return out


def test_mixed_batch_gives_each_request_its_own_adapter(default_model_dir: Path,
                                                       lora_dir: Path) -> None:
    """Base and two adapters in the same engine steps give what each gives alone (an adapter
    leaking into another request's rows would show). Correctness against transformers + peft:
    test_lora_peft.py."""
    engine = OpenVINOEngine(EngineConfig(default_model_dir, plugin_config=F32,
                                         lora=LoraOptions(dirs=(lora_dir,))))
    try:
        cases = [(p, a) for p in PROMPTS[:2] for a in (None, "alpha", "beta")]
        mixed = generate(engine, cases, 12)
        alone = [generate(engine, [case], 12)[0] for case in cases]
    finally:
        engine.close()
    assert all(len(ids) == 12 for ids in mixed)
    assert mixed == alone
    outputs = dict(zip(cases, mixed, strict=True))
    for prompt in PROMPTS[:2]:  # the adapters change the output
        assert outputs[(prompt, "alpha")] != outputs[(prompt, None)] or \
            outputs[(prompt, "beta")] != outputs[(prompt, None)]


def test_slot_change_and_unload_let_running_requests_finish(default_model_dir: Path,
                                                           lora_dir: Path) -> None:
    engine = OpenVINOEngine(EngineConfig(default_model_dir, lora=LoraOptions(
        dirs=(lora_dir,), max_loras=1)))
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
