"""The shared engine on the real model: devices, batching, aborts, stop strings."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ovserve.engine import EngineConfig, OpenVINOEngine, SamplingParams, shared_engine
from ovserve.errors import EngineError, InvalidInput


def test_missing_device_lists_the_available_ones(default_model_dir: Path) -> None:
    with pytest.raises(EngineError, match=r"device 'NPU' is not present; available: .*CPU"):
        OpenVINOEngine(EngineConfig(models_path=default_model_dir, device="NPU"))


def test_unprepared_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"has no openvino_model\.xml"):
        OpenVINOEngine(EngineConfig(models_path=tmp_path))


def test_missing_tokenizer_is_named(tmp_path: Path) -> None:
    (tmp_path / "openvino_model.xml").write_text("<net/>")
    with pytest.raises(EngineError, match=r"has no openvino_tokenizer\.xml"):
        OpenVINOEngine(EngineConfig(models_path=tmp_path))


def test_engine_process_that_cannot_load_the_model_says_why(default_model_dir: Path,
                                                            tmp_path: Path) -> None:
    for name in ("openvino_tokenizer.xml", "openvino_tokenizer.bin",
                 "openvino_detokenizer.xml", "openvino_detokenizer.bin", "config.json"):
        shutil.copy(default_model_dir / name, tmp_path / name)
    (tmp_path / "openvino_model.xml").write_text("<net>truncated")
    with pytest.raises(EngineError, match=r"engine .*: loading .* on CPU failed: "):
        OpenVINOEngine(EngineConfig(models_path=tmp_path))


def test_batch_abort_stop_strings_and_context(default_model_dir: Path) -> None:
    engine = shared_engine(default_model_dir)
    assert shared_engine(str(default_model_dir)) is engine  # one engine per model
    batch = engine.submit_batch(["Count from one to twenty in words.", "Say hello."],
                                SamplingParams(max_tokens=24))
    texts = ["", ""]
    finish: list[str | None] = [None, None]
    for update in batch.updates():
        for i, delta in enumerate(update):
            if delta is not None:
                texts[i] += delta.text
                finish[i] = delta.finish_reason or finish[i]
    assert all(texts) and set(finish) <= {"stop", "length"}
    assert all(0 < n <= 24 for n in batch.completion_tokens)

    prompt = "What is the theory of relativity?"
    full = "".join(d.text for d in engine.submit(prompt, SamplingParams(max_tokens=40)).deltas())
    stop_word = full.split()[6]  # greedy decoding: the same text comes again up to here
    stopped = engine.submit(prompt, SamplingParams(max_tokens=40, stop=(stop_word,)))
    text = "".join(d.text for d in stopped.deltas())
    assert stop_word not in text and full.startswith(text.rstrip()) and text.strip()

    before = engine.stats().aborted_requests
    long = engine.submit("Write a long story about a dragon.", SamplingParams(max_tokens=500))
    deltas = long.deltas()
    next(deltas)
    deltas.close()  # the consumer went away
    for _ in range(200):
        stats = engine.stats()
        if stats.active_requests == 0 and stats.aborted_requests == before + 1:
            break
        time.sleep(0.02)
    assert engine.stats().aborted_requests == before + 1
    assert engine.stats().active_requests == 0
    assert long.request is not None and len(long.request.token_ids) < 500

    with pytest.raises(InvalidInput, match="over the model's context of 8192 tokens"):
        engine.submit("word " * 8190, SamplingParams(max_tokens=10))


def test_sampling_parameters_are_checked_before_the_engine(default_model_dir: Path) -> None:
    engine = shared_engine(default_model_dir)
    with pytest.raises(InvalidInput, match=r"invalid sampling parameters: .*top_p"):
        engine.submit("Hi", SamplingParams(max_tokens=4, temperature=0.5, top_p=2.0))
    assert "".join(d.text for d in engine.submit("Hi", SamplingParams(max_tokens=4)).deltas())


def test_engine_process_gone_fails_its_requests(default_model_dir: Path) -> None:
    engine = OpenVINOEngine(EngineConfig(models_path=default_model_dir, cache_size_gb=1))
    try:
        deltas = engine.submit("Write a long story.", SamplingParams(max_tokens=400)).deltas()
        next(deltas)
        engine._process.kill()  # the engine process crashes mid-generation
        last = list(deltas)[-1]
        assert last.finish_reason is not None and last.finish_reason.startswith("error: the "
                                                                                "engine process")
        assert engine.stats().active_requests == 0
        with pytest.raises(EngineError, match="not running: the engine process exited"):
            engine.submit("Hi", SamplingParams(max_tokens=4))
    finally:
        engine.close()
    assert engine._process.poll() is not None


def test_kv_cache_usage_is_a_fraction_while_generating(default_model_dir: Path) -> None:
    engine = shared_engine(default_model_dir)
    deltas = engine.submit("Write a long story.", SamplingParams(max_tokens=64)).deltas()
    for _ in range(4):
        next(deltas)
    usage = engine.stats().kv_cache_usage  # as of the last step, this request's blocks in it
    deltas.close()
    assert 0 < usage < 0.05  # a few blocks of a 1 GB cache, not a percentage


async def test_without_max_tokens_the_context_is_filled_up_to_a_limit(
        default_model_dir: Path) -> None:
    engine = shared_engine(default_model_dir)
    first, second = engine.submit_async("Say hi.", SamplingParams(max_tokens=None), n=2,
                                        fill_up_to=3)
    for generation in (first, second):  # one prompt, two generations
        text = "".join([d.text async for d in generation.adeltas()])
        assert text and generation.request is not None
        assert len(generation.request.token_ids) <= 3
    with pytest.raises(InvalidInput, match="more than the model's context of 8192 tokens"):
        engine.submit_async("word " * 8300, SamplingParams(), fill_up_to=3)
