"""finetune_lora.py's input: JSON lines from a file or from standard input (``--data -``, what
superduper's trainer pipes from a database query), and ``--chat``, which renders each prompt
as the user turn of the model's own chat template, as chat completions will."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ovserve.toolchain.finetune import _examples, _prompt_text, base_checkpoint, read_rows

ROWS = [{"prompt": "Where do adapters go?", "completion": "In --lora_dir."},
        {"prompt": "Which port?", "completion": "8000."}]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return base_checkpoint("smollm2-135m-instruct")[1]


def test_rows_from_standard_input_and_from_a_file(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    lines = "".join(json.dumps(row) + "\n" for row in ROWS)
    monkeypatch.setattr("sys.stdin", io.StringIO(lines + "\n"))
    assert read_rows(Path("-")) == ROWS
    path = tmp_path / "train.jsonl"
    path.write_text(lines)
    assert read_rows(path) == ROWS


@pytest.mark.parametrize(("text", "error"), [
    ("", "<stdin> has no examples"),
    ('{"prompt": "p"}\n', "<stdin>:1: needs string fields prompt and completion"),
    ('{"prompt": "p", "completion": "c"}\nnot json\n', "<stdin>:2: not JSON"),
])
def test_bad_standard_input_names_the_line(monkeypatch: pytest.MonkeyPatch, text: str,
                                           error: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    with pytest.raises(ValueError, match=error):
        read_rows(Path("-"))


def test_chat_prompts_are_the_templates_user_turn(tokenizer: Any) -> None:
    """With --chat the prompt is what the chat template renders for one user message with the
    generation prompt; the loss stays on the completion and the end-of-sequence token."""
    rendered = _prompt_text(ROWS[0]["prompt"], tokenizer, chat=True)
    expected = tokenizer.apply_chat_template([{"role": "user", "content": ROWS[0]["prompt"]}],
                                             tokenize=False, add_generation_prompt=True)
    assert rendered == expected and rendered != ROWS[0]["prompt"]
    assert ROWS[0]["prompt"] in rendered
    assert _prompt_text(ROWS[0]["prompt"], tokenizer, chat=False) == ROWS[0]["prompt"]
    (ids, labels), = _examples(ROWS[:1], tokenizer, chat=True)
    prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids[:len(prompt_ids)] == prompt_ids
    assert labels[:len(prompt_ids)] == [-100] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):]
    assert ids[-1] == tokenizer.eos_token_id
