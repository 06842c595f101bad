"""Detokenization by the byte table (``engine.detokenizer``) against the model's detokenizer,
and the engine loop's streamed text with and without it: the same pieces, step by step, for
text with multi-byte characters split across tokens and steps, special tokens kept or
skipped, invalid UTF-8, and LoRA slots' offset ids."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openvino_genai as ov_genai
import pytest

from ovserve.engine.detokenizer import ByteVocab, agrees
from ovserve.engine.messages import Output
from ovserve.engine.process import EngineLoop, _Slot
from tests.conftest import EMBEDDING_MODEL_DIR


@pytest.fixture(scope="module")
def tokenizer(default_model_dir: Path) -> Any:
    return ov_genai.Tokenizer(str(default_model_dir))


@pytest.fixture(scope="module")
def vocab(default_model_dir: Path) -> ByteVocab:
    table = ByteVocab.load(default_model_dir)
    assert table is not None, "the built-in model's detokenizer is a byte table"
    return table


def invalid_alone(vocab: ByteVocab) -> list[int]:
    """Tokens whose bytes are not UTF-8 by themselves (pieces of multi-byte characters)."""
    return [t for t, piece in enumerate(vocab.pieces) if vocab.decode([t], False) is None]


def test_the_byte_table_decodes_as_the_detokenizer(vocab: ByteVocab, tokenizer: Any) -> None:
    assert agrees(vocab, tokenizer)
    assert vocab.special == {0, 1, 2} | set(range(3, 17))  # <|endoftext|>, <|im_start|>, ...
    pieces = invalid_alone(vocab)
    assert pieces, "the vocabulary has byte-level pieces"
    rng = random.Random(7)
    undecided = 0
    for _ in range(2000):
        ids = [rng.choice(pieces) if rng.random() < 0.3 else rng.randrange(len(vocab.pieces))
               for _ in range(rng.randint(1, 8))]
        for skip in (True, False):
            text = vocab.decode(ids, skip)
            if text is None:  # invalid UTF-8: left to the detokenizer
                undecided += 1
                continue
            assert text == tokenizer.decode(ids, skip_special_tokens=skip), ids
    assert undecided  # the sample had invalid sequences too
    assert vocab.decode([len(vocab.pieces), 28]) == tokenizer.decode([len(vocab.pieces), 28])
    assert vocab.decode([pieces[0]]) is None


def test_a_detokenizer_that_does_more_than_join_bytes_has_no_table() -> None:
    # WordPiece: "##" joins and spaces between words are regular expressions in its graph
    assert ByteVocab.load(EMBEDDING_MODEL_DIR) is None
    assert ByteVocab.load(Path("/nonexistent")) is None


class _Handle:
    """A request handle that gives ``steps`` (lists of token ids) one per step."""

    def __init__(self, steps: list[list[int]], finish: str) -> None:
        self.steps, self.finish = list(steps), finish

    def can_read(self) -> bool:
        return bool(self.steps)

    def read(self) -> dict[int, Any]:
        ids = self.steps.pop(0)
        reason = self.finish if not self.steps else "NONE"
        return {0: SimpleNamespace(generated_ids=ids, generated_log_probs=[-0.5] * len(ids),
                                   finish_reason=SimpleNamespace(name=reason))}

    def get_status(self) -> Any:
        return SimpleNamespace(name="RUNNING" if self.steps else "FINISHED")


class _Pipeline:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def get_tokenizer(self) -> Any:
        return self.tokenizer


Requests = list[tuple[list[list[int]], frozenset[int] | None]]


def stream(tokenizer: Any, byte_vocab: ByteVocab | None, requests: Requests, vocab: int = 0
           ) -> list[list[Output]]:
    """Every step's outputs of the loop for these requests (steps of ids, special tokens kept
    (a stop set) or not (None)), all running together."""
    loop = EngineLoop(_Pipeline(tokenizer), conn=None, vocab=vocab,  # type: ignore[arg-type]
                      byte_vocab=byte_vocab)
    for request_id, (steps, keep) in enumerate(requests):
        loop.active[request_id] = _Slot(_Handle(steps, "STOP"), keep_special=keep)
    outputs = []
    while loop.active:
        outputs.append(loop._collect())
    return outputs


def test_the_loop_streams_the_same_text_with_the_byte_table(vocab: ByteVocab,
                                                            tokenizer: Any) -> None:
    pieces = invalid_alone(vocab)
    emoji = tokenizer.encode("ok 🤗🤗 añ 日本語 done", add_special_tokens=False).input_ids
    emoji_ids: list[int] = emoji.data[0].tolist()
    rng = random.Random(3)
    requests: Requests = [
        ([[t] for t in emoji_ids], None),  # one token per step: characters split over steps
        ([emoji_ids[:3], emoji_ids[3:]], None),
        ([[t] for t in emoji_ids] + [[2]], frozenset({2})),  # kept specials, final stop
        ([[1, 28], [2, 29], [2]], frozenset({2})),
        ([[1, 28], [2, 29], [5]], None),
    ]
    for _ in range(30):  # random tokens, often byte pieces and specials, some invalid
        steps = [[rng.choice(pieces) if rng.random() < 0.4 else rng.randrange(17 if
                  rng.random() < 0.1 else len(vocab.pieces)) for _ in range(rng.randint(1, 3))]
                 for _ in range(rng.randint(1, 12))]
        requests.append((steps, frozenset({2}) if rng.random() < 0.3 else None))
    expected = stream(tokenizer, None, requests)
    assert stream(tokenizer, vocab, requests) == expected
    texts = ["".join(o.text for step in expected for o in step if o.request_id == n)
             for n in range(3)]
    assert texts[0] == texts[1] == "ok 🤗🤗 añ 日本語 done"
    assert texts[2] == texts[0]  # the stop token that ended it is not in the text


def test_lora_slots_offset_ids_decode_as_the_base_vocabulary(vocab: ByteVocab,
                                                             tokenizer: Any) -> None:
    size = len(vocab.pieces)
    ids = tokenizer.encode("Hello 🤗 world", add_special_tokens=False).input_ids.data[0].tolist()
    base: Requests = [([[t] for t in ids], None)]
    on_slot: Requests = [([[t + 2 * size] for t in ids], None)]
    # the widened detokenizer (ids mod vocab) is what the loop sees with LoRA slots; here the
    # base one sees the base ids and the table the offset ones
    expected = stream(tokenizer, None, base)
    got = stream(tokenizer, vocab, on_slot, vocab=size)
    assert [[(o.text, o.token_ids, o.done) for o in step] for step in got] == [
        [(o.text, o.token_ids, o.done) for o in step] for step in expected]
