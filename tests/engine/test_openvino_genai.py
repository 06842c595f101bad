"""The openvino-genai engine on the real model: devices, batching, aborts, stop strings,
forced lengths, and a killed engine process (its requests fail, it restarts)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from ovserve.engine import Delta, EngineConfig, GenerationLimits, SamplingParams, shared_engine
from ovserve.engine.client import OpenVINOEngine
from ovserve.errors import EngineError, EngineFailure, EngineUnavailable, InvalidInput
from tests.conftest import generation_overrides, plugin_config


def run(engine: OpenVINOEngine, prompt: str, **params: object) -> tuple[str, int]:
    """Text and token count of one request, read to its end."""
    generation = engine.submit(engine.prepare(prompt, SamplingParams(**params)))  # type: ignore[arg-type]
    text = "".join(d.text for d in generation.deltas())
    return text, generation.completion_tokens


def run_tokens(engine: OpenVINOEngine, prompt: str, **params: object
               ) -> tuple[list[Delta], int]:
    """Every delta of one request, read to its end, and its token count."""
    generation = engine.submit(engine.prepare(prompt, SamplingParams(**params)))  # type: ignore[arg-type]
    deltas = list(generation.deltas())
    return deltas, generation.completion_tokens


def wait_idle(engine: OpenVINOEngine) -> None:
    """Until no request is running (an aborted one leaves at the engine's next step)."""
    deadline = time.monotonic() + 30
    while engine.stats().active_requests:
        assert time.monotonic() < deadline, "a request is still running"
        time.sleep(0.02)


def test_missing_device_lists_the_available_ones(default_model_dir: Path) -> None:
    with pytest.raises(EngineError, match=r"device 'NPU' is not present: NPU is missing; "
                                         r"available: .*CPU"):
        OpenVINOEngine(EngineConfig(models_path=default_model_dir, device="NPU",
                                    plugin_config=plugin_config()))


def test_unprepared_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"has no openvino_model\.xml"):
        OpenVINOEngine(EngineConfig(models_path=tmp_path, plugin_config=plugin_config()))


def test_missing_tokenizer_is_named(tmp_path: Path) -> None:
    (tmp_path / "openvino_model.xml").write_text("<net/>")
    with pytest.raises(EngineError, match=r"has no openvino_tokenizer\.xml"):
        OpenVINOEngine(EngineConfig(models_path=tmp_path, plugin_config=plugin_config()))


def test_engine_process_that_cannot_load_the_model_says_why(default_model_dir: Path,
                                                            tmp_path: Path) -> None:
    for name in ("openvino_tokenizer.xml", "openvino_tokenizer.bin",
                 "openvino_detokenizer.xml", "openvino_detokenizer.bin", "config.json"):
        shutil.copy(default_model_dir / name, tmp_path / name)
    (tmp_path / "openvino_model.xml").write_text("<net>truncated")
    with pytest.raises(EngineError, match=r"engine .*: loading .* on CPU failed: "):
        OpenVINOEngine(EngineConfig(models_path=tmp_path, plugin_config=plugin_config()))


def test_batch_abort_stop_strings_and_context(engine: OpenVINOEngine) -> None:
    params = SamplingParams(max_tokens=24, ignore_eos=True)
    batch = engine.submit_batch([engine.prepare(p, params) for p in (
        "Count from one to twenty in words.", "Say hello.")])
    counts = [0, 0]
    finish: list[str | None] = [None, None]
    for update in batch.updates():
        for i, delta in enumerate(update):
            if delta is not None:
                counts[i] += len(delta.token_ids)
                finish[i] = delta.finish_reason or finish[i]
    assert counts == [24, 24] and finish == ["length", "length"]
    assert batch.completion_tokens == [24, 24]

    # Stop strings, checked within each request: structured output fixes the text (the model
    # only chooses how to split it into tokens), so the first "e" is in "street" whatever the
    # CPU's kernels make of near-ties. openvino-genai ends the generation at the token that
    # completes the first "e" and cuts at token granularity, so no "e" is in the tokens before
    # the last one; the last one holds the first "e" (kept) or the text just before it
    # (dropped).
    for include in (False, True):
        deltas, tokens = run_tokens(engine, "Describe a street.", max_tokens=40, stop=("e",),
                                    include_stop_str_in_output=include,
                                    structured=("regex", "A quiet street at night"))
        text = "".join(d.text for d in deltas)
        ids = [t for d in deltas for t in d.token_ids]
        assert deltas[-1].finish_reason == "stop" and tokens == len(ids) < 40, (text, include)
        assert "e" not in "".join(engine.token_texts(ids[:-1])), (text, include)
        assert "A quiet str".startswith("".join(engine.token_texts(ids[:-1]))), text
        if include:
            assert "e" in engine.token_texts(ids[-1:])[0], text

    before = engine.stats().aborted_requests
    long = engine.submit(engine.prepare("Write a story.",
                                        SamplingParams(max_tokens=500, ignore_eos=True)))
    deltas_of_long = long.deltas()
    next(deltas_of_long)
    deltas_of_long.close()  # the consumer went away
    deadline = time.monotonic() + 30
    while engine.stats().aborted_requests != before + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    wait_idle(engine)
    assert engine.stats().aborted_requests == before + 1
    assert engine.stats().active_requests == 0
    assert long.completion_tokens < 500

    with pytest.raises(InvalidInput, match="over the model's context of 8192 tokens"):
        engine.prepare("word " * 8190, SamplingParams(max_tokens=10))


def test_shared_engine_outside_a_server_is_one_per_model(default_model_dir: Path) -> None:
    engine = shared_engine(default_model_dir, plugin_config=plugin_config())
    assert shared_engine(str(default_model_dir)) is engine


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_ignore_eos_and_min_tokens_force_the_length(engine: OpenVINOEngine,
                                                    temperature: float) -> None:
    for seed in (1, 2):
        _, tokens = run(engine, "Say hi.", max_tokens=48, ignore_eos=True,
                        temperature=temperature, seed=seed)
        assert tokens == 48
        _, tokens = run(engine, "Say hi.", max_tokens=48, min_tokens=40,
                        temperature=temperature, seed=seed)
        assert 40 <= tokens <= 48
    with pytest.raises(InvalidInput, match="min_tokens 50 is over max_tokens 48"):
        engine.prepare("Hi", SamplingParams(max_tokens=48, min_tokens=50))


def test_limits_precedence(engine: OpenVINOEngine) -> None:
    """Request, then the graph's default, then the model's, then the context left."""
    limits = GenerationLimits(max_tokens_limit=100, default_max_tokens=30)
    assert engine.prepare("Hi", SamplingParams(max_tokens=7), limits).max_new_tokens == 7
    assert engine.prepare("Hi", SamplingParams(), limits).max_new_tokens == 30
    capped = GenerationLimits(max_tokens_limit=100)
    assert engine.prepare("Hi", SamplingParams(), capped).max_new_tokens == 100
    prepared = engine.prepare("Hi", SamplingParams())
    assert prepared.max_new_tokens == engine.context_length - prepared.prompt_tokens
    with pytest.raises(InvalidInput, match="max_tokens 101 is over this model's limit of 100"):
        engine.prepare("Hi", SamplingParams(max_tokens=101), limits)
    chat = engine.prepare([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=1))
    plain = engine.prepare("Hi", SamplingParams(max_tokens=1, apply_chat_template=False))
    assert chat.prompt_tokens > plain.prompt_tokens  # the chat template was applied


def test_sampling_parameters_are_checked_before_the_engine(engine: OpenVINOEngine) -> None:
    with pytest.raises(InvalidInput, match=r"invalid sampling parameters: .*top_p"):
        engine.prepare("Hi", SamplingParams(max_tokens=4, temperature=0.5, top_p=2.0))
    assert run(engine, "Hi", max_tokens=4, ignore_eos=True)[1] == 4


def test_killed_engine_process_fails_its_requests_and_restarts(engine: OpenVINOEngine) -> None:
    stats = engine.stats()
    sync = engine.submit(engine.prepare("Write a story.",
                                        SamplingParams(max_tokens=2000, ignore_eos=True)))
    batch = engine.submit_batch([engine.prepare(p, SamplingParams(max_tokens=2000,
                                                                  ignore_eos=True))
                                 for p in ("One.", "Two.")])
    deltas, updates = sync.deltas(), batch.updates()
    next(deltas)
    next(updates)
    old_pid = engine.pid
    os.kill(old_pid, signal.SIGKILL)  # the engine process crashes mid-generation
    with pytest.raises(EngineFailure, match=r"the engine process exited \(code -9\)"):
        list(deltas)
    with pytest.raises(EngineFailure, match="the engine process exited"):
        list(updates)
    assert not engine.ready
    with pytest.raises(EngineUnavailable, match=r"not running: .*restarting"):
        engine.submit(engine.prepare("Hi", SamplingParams(max_tokens=4)))
    deadline = time.monotonic() + 120
    while not engine.ready:
        assert time.monotonic() < deadline, "the engine process was not restarted"
        time.sleep(0.05)
    after = engine.stats()
    assert engine.pid != old_pid and after.restarts == stats.restarts + 1
    assert after.active_requests == 0 and after.failed_requests >= stats.failed_requests + 3
    assert run(engine, "Hi", max_tokens=4, ignore_eos=True)[1] == 4


def test_kv_cache_usage_is_a_fraction_while_generating(engine: OpenVINOEngine) -> None:
    """2000 forced tokens: the request still runs when the stats are read, on any CPU."""
    generation = engine.submit(engine.prepare("Write a story.",
                                              SamplingParams(max_tokens=2000, ignore_eos=True)))
    deltas = generation.deltas()
    for _ in range(4):
        next(deltas)
    usage = engine.stats().kv_cache_usage  # as of the last step, this request's blocks in it
    deltas.close()  # aborts it
    wait_idle(engine)
    assert generation.completion_tokens < 2000
    assert 0 < usage < 0.05  # a few blocks of a 1 GB cache, not a percentage


async def test_async_generations_of_one_prompt(engine: OpenVINOEngine) -> None:
    prepared = engine.prepare("Say hi.", SamplingParams(max_tokens=3, ignore_eos=True))
    first, second = engine.submit_async(prepared, n=2)
    for generation in (first, second):  # one prompt, two generations
        ids = [t async for d in generation.adeltas() for t in d.token_ids]
        assert len(ids) == 3 and generation.completion_tokens == 3
    with pytest.raises(InvalidInput, match="tokens, over the model's context of 8192 tokens"):
        engine.prepare("word " * 8300, SamplingParams())


def test_closed_engine_refuses_requests(default_model_dir: Path) -> None:
    engine = OpenVINOEngine(EngineConfig(models_path=default_model_dir,
                                         plugin_config=plugin_config()))
    pid = engine.pid
    engine.close()
    with pytest.raises(EngineUnavailable, match="not running: shut down"):
        engine.submit(engine.prepare("Hi", SamplingParams(max_tokens=4)))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_token_ids_end_the_generation(engine: OpenVINOEngine,
                                           default_model_dir: Path) -> None:
    """vLLM's stop_token_ids: the run stops at the first of them, checked within one request.
    Structured output fixes the text and the stop tokens are every token of the vocabulary
    holding an "x", so however the model splits the text into tokens, one of them covers its
    "x": that token is the last, and none comes before it (no ignore_eos: it would ignore
    stop_token_ids too)."""
    size = json.loads((default_model_dir / "config.json").read_text())["vocab_size"]
    vocab = engine.token_texts(list(range(size)))
    with_x = tuple(i for i, text in enumerate(vocab) if "x" in text)
    assert with_x
    deltas, count = run_tokens(engine, "Where is the treasure?", max_tokens=64,
                               stop_token_ids=with_x,
                               structured=("regex", "Ready, set, and x marks the spot"))
    ids = [t for d in deltas for t in d.token_ids]
    assert deltas[-1].finish_reason == "stop" and count == len(ids) < 64
    assert [i for i, t in enumerate(ids) if t in with_x] == [len(ids) - 1], ids
    assert "x" in engine.token_texts(ids[-1:])[0]


def test_min_p_near_one_keeps_only_the_top_token(engine: OpenVINOEngine) -> None:
    """min_p 0.999 keeps only tokens about as likely as the top one: hot sampling with any
    seed turns greedy. Two tokens survive only where the top one has p <= 1/1.999, so a hot
    run may leave the greedy one only at such a near-tie (the greedy run's logprob says, with
    0.1 nats for the kernels' noise); nothing is compared after it (the contexts differ). A
    plain prompt of a few tokens fills no prefix-cache block."""
    assert engine.prepare("Hi", SamplingParams(min_p=0.999, temperature=1.5)
                          ).fields["min_p"] == 0.999
    common = {"max_tokens": 8, "ignore_eos": True, "apply_chat_template": False,
              "logprobs": True}
    greedy, _ = run_tokens(engine, "1, 2, 3, 4, 5,", temperature=0, **common)
    ids = [t for d in greedy for t in d.token_ids]
    logprobs = [p for d in greedy for p in d.logprobs]
    assert len(ids) == len(logprobs) == 8
    for seed in (1, 2, 3, 4):
        hot, _ = run_tokens(engine, "1, 2, 3, 4, 5,", temperature=1.5, seed=seed,
                            min_p=0.999, **common)
        hot_ids = [t for d in hot for t in d.token_ids]
        assert len(hot_ids) == 8
        split = next((i for i, (a, b) in enumerate(zip(ids, hot_ids, strict=True))
                      if a != b), None)
        assert split is None or logprobs[split] <= math.log(0.5) + 0.1, (seed, split, ids,
                                                                        hot_ids, logprobs)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_prompt_lookup_engine(default_model_dir: Path, temperature: float) -> None:
    """plugin_config {"prompt_lookup": true} (OVMS's switch): every request gets prompt
    lookup's fields (the request's, else the defaults), and generates what it is asked for."""
    looking = OpenVINOEngine(EngineConfig(models_path=default_model_dir,
                                          plugin_config=plugin_config({"prompt_lookup": True}),
                                          generation_overrides=generation_overrides()))
    try:
        prepared = looking.prepare("Hi", SamplingParams(max_tokens=4))
        assert prepared.fields["num_assistant_tokens"] == 1
        assert prepared.fields["max_ngram_size"] == 3
        asked = looking.prepare("Hi", SamplingParams(max_tokens=4, num_assistant_tokens=4,
                                                     max_ngram_size=2))
        assert (asked.fields["num_assistant_tokens"], asked.fields["max_ngram_size"]) == (4, 2)
        for k in (1, 4):  # several tokens may come from one step: the count stays exact
            _, tokens = run(looking, "Write a long essay about tea.", max_tokens=40,
                            ignore_eos=True, temperature=temperature, seed=3,
                            num_assistant_tokens=k)
            assert tokens == 40
    finally:
        looking.close()


def test_prompt_lookup_fields_need_a_prompt_lookup_engine(engine: OpenVINOEngine) -> None:
    for name in ("num_assistant_tokens", "max_ngram_size"):
        with pytest.raises(InvalidInput, match=f"{name}: only for a model served with prompt "
                                               "lookup") as caught:
            engine.prepare("Hi", SamplingParams(max_tokens=4, **{name: 2}))  # type: ignore[arg-type]
        assert caught.value.param == name
    assert "num_assistant_tokens" not in engine.prepare("Hi", SamplingParams()).fields
