"""A failed generation step: its requests fail with the reason, and the engine process is
replaced (openvino-genai's pipeline may not run again after a step threw), so later requests
are served. The failure is made by a grammar that does not compile, sent past ``prepare``
(whose checks refuse it) beside a plain request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovserve.engine.base import EngineConfig, Prepared, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from ovserve.errors import EngineError, EngineUnavailable, InvalidInput
from tests.conftest import plugin_config


@pytest.fixture(scope="module")
def engine(default_model_dir: Path) -> Iterator[OpenVINOEngine]:
    engine = OpenVINOEngine(EngineConfig(models_path=default_model_dir,
                                         plugin_config=plugin_config()),
                            restart_delays=(0.1, 1.0))
    yield engine
    engine.close()


def text(engine: OpenVINOEngine, prepared: Prepared) -> str:
    return "".join(delta.text for delta in engine.submit(prepared).deltas())


def test_a_failed_step_replaces_the_engine_process(engine: OpenVINOEngine) -> None:
    params = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True,
                            apply_chat_template=False)
    plain = engine.prepare("Once upon a time", params)
    with pytest.raises(InvalidInput, match="not a regular expression"):
        engine.prepare("Once upon a time", SamplingParams(structured=("regex", "(((")))
    broken = Prepared(plain.token_ids, {**plain.fields, "regex": "((("})
    pid = engine.pid
    first, second = engine.submit(plain), engine.submit(broken)
    for generation in (first, second):
        with pytest.raises(EngineError, match="a generation step failed"):
            "".join(delta.text for delta in generation.deltas())
    deadline = time.monotonic() + 120
    while True:  # while the new engine process loads, requests are turned away (or fail as
        # at any engine process's exit, when sent just before the server saw it go)
        try:
            later = text(engine, engine.prepare("Once upon a time", params))
            break
        except EngineError as exc:
            assert isinstance(exc, EngineUnavailable) or "process exited" in str(exc), exc
            assert time.monotonic() < deadline, "the engine did not come back"
            time.sleep(0.1)
    # (with the old process kept, this request failed as every later one did: "... already
    # in scheduling phase")
    assert later and engine.pid != pid
