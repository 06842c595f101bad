"""A Llama Hugging Face checkpoint -> a GGUF for llama.cpp, with the ``gguf`` package.

What llama.cpp's own ``convert_hf_to_gguf.py`` does for a plain Llama, in numpy: the GGUF
tensor names, Q and K rows permuted into llama.cpp's rotary layout, the matmul weights quantized
(Q4_1 by default: the type of the built-in model's GGUF), the norms kept in F32, the token
embedding and the output head in Q8_0, and a byte-level BPE tokenizer (``gpt2`` model) with its
chat template.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain.shaped_tokenizer import gguf_tokenizer_fields

log = logging.getLogger(__name__)

#: GGUF quantization types this writer makes for the matmul weights
QUANT_TYPES = ("Q4_1", "Q4_0", "Q8_0", "F16")
#: llama.cpp's general.file_type for each (LLAMA_FTYPE_MOSTLY_*)
FILE_TYPES = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")
_LAYER_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
                 "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a Llama checkpoint's tensor."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _LAYER.match(hf_name)
    if match is None or match.group(2) not in _LAYER_NAMES:
        raise ToolchainError(f"no GGUF name for the Llama tensor {hf_name}")
    return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.weight"


def permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """Q/K rows from Hugging Face's rotary layout (halves) to llama.cpp's (interleaved pairs),
    as convert_hf_to_gguf.py's ``LlamaModel.permute``."""
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensor_type(name: str, quant: str) -> str:
    if name.endswith("_norm.weight"):
        return "F32"
    if name in ("token_embd.weight", "output.weight"):
        return "Q8_0" if quant != "F16" else "F16"
    return quant


def _add_metadata(writer: Any, config: dict[str, Any], tokenizer: dict[str, Any],
                  tokenizer_config: dict[str, Any], chat_template: str | None,
                  quant: str) -> None:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    writer.add_name(str(config.get("_name_or_path") or "llama"))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    rope = config.get("rope_parameters") or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(FILE_TYPES[quant])
    tokens, types, merges = gguf_tokenizer_fields(tokenizer)
    if len(tokens) != int(config["vocab_size"]):
        raise ToolchainError(f"the tokenizer has {len(tokens)} tokens, the model "
                             f"{config['vocab_size']}")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")  # the built-in tokenizer's pre-tokenizer in llama.cpp
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    ids = {token: idx for idx, token in enumerate(tokens)}
    adders = {"bos_token": writer.add_bos_token_id, "eos_token": writer.add_eos_token_id,
              "unk_token": writer.add_unk_token_id, "pad_token": writer.add_pad_token_id}
    for key, add in adders.items():
        token = tokenizer_config.get(key)
        if isinstance(token, str) and token in ids:
            add(ids[token])
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)


def write_gguf(hf_dir: Path, output: Path, quant: str = "Q4_1") -> Path:
    """Write ``hf_dir`` (a Llama checkpoint in safetensors with a BPE tokenizer.json) as a GGUF
    to ``output``, its matmul weights in ``quant``; returns ``output``."""
    import gguf
    from safetensors import safe_open

    if quant not in QUANT_TYPES:
        raise ToolchainError(f"GGUF type {quant!r} is not one of {', '.join(QUANT_TYPES)}")
    config = json.loads((hf_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ToolchainError(f"{hf_dir} is a {config.get('model_type')!r} model, not llama")
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    tokenizer_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    template_file = hf_dir / "chat_template.jinja"
    template = (template_file.read_text() if template_file.is_file()
                else tokenizer_config.get("chat_template"))
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)

    writer = gguf.GGUFWriter(str(output), "llama")
    _add_metadata(writer, config, tokenizer, tokenizer_config, template, quant)
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ToolchainError(f"{hf_dir} has no safetensors weights")
    for file in files:
        with safe_open(str(file), framework="np") as weights:
            names = list(weights.keys())
            for hf_name in tqdm(names, desc=f"GGUF {quant}", unit="tensor"):
                name = gguf_name(hf_name)
                data = weights.get_tensor(hf_name).astype(np.float32)
                if name.endswith("attn_q.weight"):
                    data = permute_rows(data, heads)
                elif name.endswith("attn_k.weight"):
                    data = permute_rows(data, kv_heads)
                kind = _tensor_type(name, quant)
                qtype = gguf.GGMLQuantizationType[kind]
                if kind == "F32":
                    writer.add_tensor(name, data)
                elif kind == "F16":
                    writer.add_tensor(name, data.astype(np.float16))
                else:
                    writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=True)
    writer.close()
    log.debug("wrote %s (%s, %.1f MB)", output, quant, output.stat().st_size / 1e6)
    return output
