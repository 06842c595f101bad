"""GGUF -> Hugging Face checkpoint, with the tokenizer transformers gets wrong rebuilt correctly.

transformers (5.5) dequantizes a GGUF model fine, but the tokenizer it builds from a GGUF with
``tokenizer.ggml.model = gpt2`` is broken in four ways: it comes out as a CodeLlama tokenizer,
eos is set to the BOS token, five FIM tokens are appended past the vocabulary, and a
post-processor prepends BOS although the GGUF says ``add_bos_token = False``. Its decoder is the
SentencePiece one as well. We keep its BPE vocabulary, merges, pre-tokenizer and added tokens
(those are right) and rebuild the rest from the GGUF's own metadata.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import ToolchainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GGUFTokenizerInfo:
    """What the GGUF itself says about its tokenizer."""

    model: str
    tokens: list[str]
    bos_id: int
    eos_id: int
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None


def read_tokenizer_info(gguf_path: Path) -> GGUFTokenizerInfo:
    """Read tokenizer metadata straight from the GGUF file."""
    import gguf

    fields = gguf.GGUFReader(str(gguf_path)).fields

    def get(key: str, default: Any = None) -> Any:
        field = fields.get(key)
        return default if field is None else field.contents()

    tokens = get("tokenizer.ggml.tokens")
    if not tokens:
        raise ToolchainError(f"{gguf_path} has no tokenizer.ggml.tokens")
    return GGUFTokenizerInfo(
        model=str(get("tokenizer.ggml.model", "")),
        tokens=list(tokens),
        bos_id=int(get("tokenizer.ggml.bos_token_id")),
        eos_id=int(get("tokenizer.ggml.eos_token_id")),
        unk_id=get("tokenizer.ggml.unknown_token_id"),
        pad_id=get("tokenizer.ggml.padding_token_id"),
        add_bos=bool(get("tokenizer.ggml.add_bos_token", False)),
        chat_template=get("tokenizer.chat_template"),
    )


def corrected_tokenizer(gguf_path: Path) -> Any:
    """Build a ``PreTrainedTokenizerFast`` whose ids match the GGUF's own tokenizer."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    info = read_tokenizer_info(gguf_path)
    if info.model != "gpt2":
        raise ToolchainError(
            f"{gguf_path.name}: tokenizer model {info.model!r} is not supported "
            "(only byte-level BPE, tokenizer.ggml.model = gpt2)"
        )
    broken = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    spec = json.loads(broken.backend_tokenizer.to_str())
    vocab_size = len(info.tokens)
    # 1. drop the FIM tokens appended past the GGUF vocabulary
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < vocab_size]
    # 2. no BOS template: a byte-level post-processor, as the GGUF's add_bos_token=False says
    if info.add_bos:
        bos = info.tokens[info.bos_id]
        spec["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [info.bos_id], "tokens": [bos]}},
        }
    else:
        spec["post_processor"] = {
            "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
            "use_regex": False,
        }
    # 3. a byte-level decoder (the converted one is SentencePiece's and mangles "\u2581")
    spec["decoder"] = {
        "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True,
    }
    backend = Tokenizer.from_str(json.dumps(spec))

    def token(idx: int | None) -> str | None:
        return None if idx is None else info.tokens[int(idx)]

    # 4. bos/eos/unk/pad from the GGUF (transformers sets eos to the BOS token)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token(info.bos_id),
        eos_token=token(info.eos_id),
        unk_token=token(info.unk_id),
        pad_token=token(info.pad_id if info.pad_id is not None else info.eos_id),
        add_bos_token=info.add_bos,
        clean_up_tokenization_spaces=False,
        model_max_length=8192,
    )
    if info.chat_template:
        tokenizer.chat_template = info.chat_template
    return tokenizer


def convert(gguf_path: Path, output: Path) -> None:
    """Write a Hugging Face checkpoint (fp32 safetensors + corrected tokenizer) to ``output``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    log.info("dequantizing %s with transformers", gguf_path)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = corrected_tokenizer(gguf_path)
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, attr, getattr(tokenizer, attr))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    log.info("wrote the Hugging Face checkpoint to %s", output)
