"""Text that keeps special tokens (for output parsers whose markers are special tokens), on
the real model: streamed pieces add up to the detokenized ids with their special tokens, less
the stop token that ended the text; requests beside it in the same steps keep skipping them."""

from __future__ import annotations

from pathlib import Path

import openvino_genai as ov_genai
import pytest

from ovserve.engine import SamplingParams
from ovserve.engine.client import OpenVINOEngine

#: a finished turn, so that the model's next tokens are likely special ones (<|im_start|>,
#: <|im_end|>); the verdicts hold whatever it writes
PROMPT = ("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
          "<|im_start|>user\nAgain.<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("ignore_eos", [True, False])
def test_text_keeps_special_tokens_but_not_the_final_stop(engine: OpenVINOEngine,
                                                          default_model_dir: Path,
                                                          ignore_eos: bool) -> None:
    tokenizer = ov_genai.Tokenizer(str(default_model_dir))
    params = SamplingParams(max_tokens=40, ignore_eos=ignore_eos, apply_chat_template=False)
    kept = engine.submit(engine.prepare(PROMPT, SamplingParams(
        max_tokens=40, ignore_eos=ignore_eos, apply_chat_template=False,
        skip_special_tokens=False)))
    plain = engine.submit(engine.prepare(PROMPT, params))  # in the same steps
    results = []
    for generation in (kept, plain):
        deltas = list(generation.deltas())
        ids = [t for d in deltas for t in d.token_ids]
        results.append(("".join(d.text for d in deltas), ids, deltas[-1].finish_reason))
    (kept_text, kept_ids, finish), (plain_text, plain_ids, _) = results
    fields = engine.prepare(PROMPT, params).fields
    stops = {fields["eos_token_id"], *fields["stop_token_ids"]}
    shown = kept_ids[:-1] if finish == "stop" and kept_ids[-1] in stops else kept_ids
    assert kept_text == tokenizer.decode(shown, skip_special_tokens=False)
    assert plain_text == tokenizer.decode(plain_ids, skip_special_tokens=True)
    if finish == "stop":
        assert not kept_text.endswith(tokenizer.decode([kept_ids[-1]],
                                                       skip_special_tokens=False))
