"""The OpenAI layer without a server: request validation and what it logs from requests."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from ovserve.transport.openai.protocol import CompletionRequest
from ovserve.transport.openai.serving import _log_unknown, _structured


def test_unknown_field_names_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    forged = "x\n2026-01-01 00:00:00,000 ERROR ovserve: forged"
    request = CompletionRequest.model_validate({"model": "m", "prompt": "p", forged: 1})
    with caplog.at_level(logging.INFO):
        _log_unknown(request)
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "forged" in record.getMessage()


@pytest.mark.parametrize(("field", "value"), [
    ("stream", "yes"), ("stream", 1), ("echo", 0), ("ignore_eos", "true"),
    ("temperature", float("nan")), ("repetition_penalty", float("inf")), ("seed", -1),
    ("seed", 2**70)])
def test_lenient_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        CompletionRequest.model_validate({"model": "m", "prompt": "p", field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_guided_choice_is_an_escaped_alternation() -> None:
    request = CompletionRequest.model_validate(
        {"model": "m", "prompt": "p", "guided_choice": ["a.b", "c|d", "(e)"]})
    assert _structured(request) == ("regex", r"(a\.b|c\|d|\(e\))")


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "a\ud800b"}, "prompt"), ({"prompt": ["ok", "\udfff"]}, "prompt"),
    ({"prompt": "ok", "stop": ["\ud800"]}, "stop")])
def test_lone_surrogates_are_named_not_sent_to_the_tokenizer(body: dict[str, object],
                                                             param: str) -> None:
    from ovserve.errors import InvalidInput
    from ovserve.transport.openai.serving import _check_text

    with pytest.raises(InvalidInput) as info:
        _check_text(CompletionRequest.model_validate({"model": "m", **body}))
    assert info.value.param == param
