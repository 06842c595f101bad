"""A byte-level BPE tokenizer cut down to a smaller vocabulary, for models made offline with
another model's shape (``scripts/make_shaped_model.py``).

The built-in SmolLM2 tokenizer has 49,152 tokens; TinyLlama-1.1B has a 32,000-row embedding.
In a BPE vocabulary built by merging, a merge's result always has a higher id than its two
parts, so keeping the ids below N and the merges whose result is kept leaves a complete,
smaller BPE tokenizer: every text still tokenizes (down to single bytes), only into ids < N.
The special tokens (ids 0-16 in SmolLM2) and the chat template stay as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ovserve.errors import ToolchainError

#: the Hugging Face tokenizer files copied along with the cut-down tokenizer.json
TOKENIZER_FILES = ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def _merge_parts(merge: str | list[str]) -> tuple[str, str]:
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    return left, right


def truncate_bpe(spec: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """``spec`` (a tokenizer.json as a dict) with only the ids below ``vocab_size``."""
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise ToolchainError(f"only a BPE tokenizer can be cut down, not {model.get('type')!r}")
    vocab: dict[str, int] = model["vocab"]
    if vocab_size > len(vocab):
        raise ToolchainError(f"the tokenizer has {len(vocab)} tokens, fewer than {vocab_size}")
    kept = {token: idx for token, idx in vocab.items() if idx < vocab_size}
    if sorted(kept.values()) != list(range(vocab_size)):
        raise ToolchainError("the tokenizer's ids below the new size are not contiguous")
    merges = []
    for merge in model["merges"]:
        left, right = _merge_parts(merge)
        if left + right in kept:
            if left not in kept or right not in kept:
                raise ToolchainError(f"merge {left!r} + {right!r} needs a token that is cut")
            merges.append(merge)
    added = [t for t in spec.get("added_tokens", []) if t["id"] < vocab_size]
    return {**spec, "added_tokens": added, "model": {**model, "vocab": kept, "merges": merges}}


def write_truncated_tokenizer(source: Path, output: Path, vocab_size: int) -> None:
    """Copy the Hugging Face tokenizer in ``source`` to ``output``, cut to ``vocab_size``."""
    spec = json.loads((source / "tokenizer.json").read_text())
    (output / "tokenizer.json").write_text(
        json.dumps(truncate_bpe(spec, vocab_size), ensure_ascii=False))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, output / name)


def gguf_tokenizer_fields(spec: dict[str, Any]) -> tuple[list[str], list[int], list[str]]:
    """Tokens (by id), token types (llama.cpp's: 1 normal, 3 control) and merges ("a b") of a
    BPE tokenizer.json, as a GGUF's ``tokenizer.ggml.*`` arrays hold them."""
    vocab: dict[str, int] = spec["model"]["vocab"]
    tokens = [""] * len(vocab)
    for token, idx in vocab.items():
        tokens[idx] = token
    special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    types = [3 if idx in special else 1 for idx in range(len(tokens))]
    merges = [" ".join(_merge_parts(m)) for m in spec["model"]["merges"]]
    return tokens, types, merges
