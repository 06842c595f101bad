"""Detokenization without an inference, for the detokenizers whose text is their tokens' bytes.

openvino-tokenizers writes the detokenizer of a byte-level BPE model (GPT-2, Llama 3, Qwen,
SmolLM2, ...) as ``VocabDecoder`` (each token's bytes, the special tokens skipped) ->
``FuzeRagged`` -> ``UTF8Validate`` (invalid UTF-8 replaced) -> ``StringTensorPack``: the text
is the concatenation of the tokens' bytes, read as UTF-8. The engine process detokenizes after
every step; running that model there costs about 0.4 ms of CPU right after a pipeline step
(0.08 ms when warm: the step leaves the caches and the thread pool elsewhere), where joining
the bytes of a few tokens in Python costs microseconds.

``ByteVocab.load`` reads the table from a detokenizer of exactly that shape, and ``None`` for
any other (SentencePiece's spaces, WordPiece's clean-up, ...). ``decode`` gives None where the
bytes are not valid UTF-8: how ``UTF8Validate`` replaces an invalid sequence is its own (it can
differ from Python's ``errors="replace"`` in how many U+FFFD it writes), so that text is left
to the detokenizer model itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the operations of a detokenizer whose text is its tokens' bytes (Convert: of the ids)
_PLAIN = {"Parameter", "Convert", "Constant", "VocabDecoder", "FuzeRagged", "UTF8Validate",
          "StringTensorPack", "Result"}


class ByteVocab:
    """Each token's bytes, and the special tokens a decode skips unless asked not to."""

    def __init__(self, pieces: Sequence[bytes], special: Iterable[int]) -> None:
        self.pieces = list(pieces)
        self.special = frozenset(special)
        #: the pieces with the special tokens' empty: what a decode that skips them joins
        self.plain = [b"" if k in self.special else p for k, p in enumerate(self.pieces)]

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str | None:
        """The text of ``token_ids`` (ids past the vocabulary name no text, as in
        ``VocabDecoder``); None when their bytes are not valid UTF-8."""
        table = self.plain if skip_special_tokens else self.pieces
        try:
            data = b"".join([table[t] for t in token_ids])
        except IndexError:
            data = b"".join([table[t] for t in token_ids if t < len(table)])
        try:
            return data.decode()
        except UnicodeDecodeError:
            return None

    @classmethod
    def load(cls, models_path: Path) -> ByteVocab | None:
        """The table of ``models_path``'s ``openvino_detokenizer.xml``, or None when that
        detokenizer does more than join its tokens' bytes (or cannot be read)."""
        try:
            import openvino as ov
            import openvino_tokenizers  # noqa: F401  (registers the detokenizer's operations)

            model = ov.Core().read_model(models_path / "openvino_detokenizer.xml")
            return _from_model(model)
        except Exception as exc:  # any doubt: the detokenizer model does the work
            log.debug("the detokenizer of %s is not a plain byte table: %s", models_path, exc)
            return None


def _from_model(model: Any) -> ByteVocab | None:
    ops = model.get_ordered_ops()
    kinds = [op.get_type_name() for op in ops]
    if not set(kinds) <= _PLAIN or any(kinds.count(k) != 1 for k in
                                       ("Parameter", "VocabDecoder", "FuzeRagged",
                                        "UTF8Validate", "StringTensorPack", "Result")):
        return None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    decoder = next(op for op in ops if op.get_type_name() == "VocabDecoder")
    ids = decoder.input(0).get_source_output().get_node()
    if ids.get_type_name() == "Convert":
        ids = ids.input(0).get_source_output().get_node()
    if ids.get_type_name() != "Parameter":
        return None
    constants = [decoder.input(k).get_source_output().get_node()
                 for k in range(1, decoder.get_input_size())]
    if any(c.get_type_name() != "Constant" for c in constants) or len(constants) not in (3, 4):
        return None
    begins, ends, chars = (c.get_data() for c in constants[:3])
    data = bytes(chars)
    pieces = [data[b:e] for b, e in zip(begins.tolist(), ends.tolist(), strict=True)]
    special = {int(t) for t in decoder.get_attributes().get("skip_tokens", [])}
    if len(constants) == 4:
        special |= {int(t) for t in constants[3].get_data().tolist()}
    return ByteVocab(pieces, special)


def agrees(vocab: ByteVocab, tokenizer: Any) -> bool:
    """Whether ``vocab`` decodes as ``tokenizer`` (an ``openvino_genai.Tokenizer`` of the same
    model) does, on every token of the vocabulary in runs of 8 (some special) with and
    without the special tokens: a check at load, not a proof."""
    size = len(vocab.pieces)
    every = [[(k + j * 977) % size for j in range(8)] for k in range(0, size, 8)]
    special = [[t, s] for s in sorted(vocab.special) for t in (every[0][1], every[-1][-1])]
    for runs in (every, special):  # runs of one length: a batch pads shorter ones
        if not runs:
            continue
        for skip in (True, False):
            expected = tokenizer.decode(runs, skip_special_tokens=skip)
            for run, text in zip(runs, expected, strict=True):
                ours = vocab.decode(run, skip)
                if ours is not None and ours != str(text):
                    log.warning("the byte table of the detokenizer decodes %s as %r, the "
                                "detokenizer as %r: the detokenizer model is used", run, ours,
                                text)
                    return False
    return True
