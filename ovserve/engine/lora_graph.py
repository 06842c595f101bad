"""Many LoRA adapters in one OpenVINO model, chosen per token: the graph rewrite.

openvino-genai's ContinuousBatchingPipeline runs one set of LoRA weights per step, so requests
for different adapters cannot share a batch. This rewrite gives the model itself a per-token
adapter index, the way S-LoRA / Punica / LoRAX do, while the unmodified pipeline keeps doing
scheduling, paged attention, prefix caching and sampling:

* The vocabulary is widened to ``(slots + 1) * V``: token ``t`` of a request on adapter slot
  ``k`` (0 is the base model) is fed as ``k * V + t``. The model splits it back:
  ``token = ids mod V``, ``slot = ids div V``.
* Every adapted linear layer ``y = x W^T`` becomes ``y + ((x A^T) * mask) B^T`` where ``A`` and
  ``B`` stack every slot's LoRA matrices (each padded to one rank, ``B`` pre-scaled by
  ``alpha / r``) and ``mask`` keeps, for each token, only the rank columns of its own slot:
  two thin matmuls per layer for all adapters at once, whatever the mix in the batch.
* The logits come out widened too, ``-inf`` everywhere except the token's own slot block, so
  the sampled token stays in its slot and the next step runs the same adapter. Stop tokens are
  offset the same way (``engine.adapters.AdapterSlots``).
* The LM head takes only the rows the sampler needs (the model input ``sampled_tokens_indices``
  that the pipeline feeds when present), the same gather openvino-genai inserts itself on an
  unmodified model; the slot index is gathered alongside.

The detokenizer gets ``ids mod V`` in front so stop strings and text work on widened ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# module path of an adapted linear layer in the exported IR, e.g.
# "__module.model.layers.3.self_attn.q_proj/aten::linear/MatMul"
_LINEAR = re.compile(
    r"^__module\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)/aten::linear/MatMul$")
LM_HEAD = "__module.lm_head/aten::linear/MatMul"
GATHER_INPUT = "sampled_tokens_indices"  # the name openvino-genai's model runner feeds


@dataclass(frozen=True)
class LoraWeights:
    """One adapter's matrices: ``a[module] [r, in]``, ``b[module] [out, r]``, and its scale.

    ``module`` is the PEFT module path below the model, e.g. ``model.layers.0.self_attn.q_proj``.
    """

    rank: int
    scale: float
    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]


def linear_layers(model: Any) -> dict[str, Any]:
    """The adaptable linear layers of an exported model: PEFT module path -> MatMul node."""
    layers: dict[str, Any] = {}
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        match = _LINEAR.match(op.get_friendly_name())
        if match:
            layer, block, proj = match.groups()
            layers[f"model.layers.{layer}.{block}.{proj}"] = op
    return layers


def linear_shapes(model: Any) -> dict[str, tuple[int, int]]:
    """``(out_features, in_features)`` of every adaptable linear layer."""
    shapes = {}
    for name, op in linear_layers(model).items():
        weight = op.input(1).get_partial_shape()
        shapes[name] = (weight[0].get_length(), weight[1].get_length())
    return shapes


def vocab_size(model: Any) -> int:
    """The vocabulary size: the last dimension of the ``logits`` output."""
    return int(model.output("logits").get_partial_shape()[-1].get_length())


def add_adapters(model: Any, slots: Sequence[LoraWeights | None], rank: int) -> None:
    """Rewrite ``model`` (an ``ov.Model`` of a causal LM exported by optimum-intel) in place so
    that slot ``k + 1`` runs ``slots[k]`` (``None``: an empty slot, the base model's output).

    ``rank`` is the common rank every adapter is padded to (the largest adapter rank).
    """
    import openvino as ov
    import openvino.opset13 as ops

    n = len(slots)
    vocab = vocab_size(model)
    input_ids = model.input("input_ids")
    consumers = list(input_ids.get_target_inputs())
    v_const = ops.constant(np.array(vocab, dtype=np.int64))
    token = ops.floor_mod(input_ids, v_const)
    slot = ops.divide(input_ids, v_const)  # ids are never negative: truncation is floor
    for consumer in consumers:
        consumer.replace_source_output(token.output(0))

    # mask[b, s, k * rank + j] = 1 when the token's slot is k + 1
    onehot = ops.one_hot(slot, ops.constant(np.array(n + 1, dtype=np.int64)),
                         ops.constant(np.array(1.0, dtype=np.float32)),
                         ops.constant(np.array(0.0, dtype=np.float32)), axis=-1)
    adapters_only = ops.slice(onehot, np.array([1], np.int64), np.array([n + 1], np.int64),
                              np.array([1], np.int64), np.array([2], np.int64))
    per_rank = ops.broadcast(ops.unsqueeze(adapters_only, np.array([3], np.int64)),
                             ops.concat([ops.shape_of(adapters_only),
                                         ops.constant(np.array([rank], dtype=np.int64))], 0))
    mask = ops.reshape(per_rank, np.array([0, 0, n * rank], dtype=np.int64), special_zero=True)

    for name, matmul in linear_layers(model).items():
        out_f, in_f = (d.get_length() for d in matmul.input(1).get_partial_shape())
        a_all = np.zeros((n * rank, in_f), dtype=np.float32)
        b_all = np.zeros((out_f, n * rank), dtype=np.float32)
        used = False
        for k, weights in enumerate(slots):
            if weights is None or name not in weights.a:
                continue
            r = weights.rank
            a_all[k * rank:k * rank + r] = weights.a[name]
            b_all[:, k * rank:k * rank + r] = weights.b[name] * weights.scale
            used = True
        if not used:
            continue
        x = matmul.input_value(0)
        targets = list(matmul.output(0).get_target_inputs())
        down = ops.matmul(x, ops.constant(a_all), False, True)
        up = ops.matmul(ops.multiply(down, mask), ops.constant(b_all), False, True)
        total = ops.add(matmul.output(0), up)
        for target in targets:
            target.replace_source_output(total.output(0))

    # LM head on the sampled rows only, logits widened to the slot blocks
    head = next(op for op in model.get_ops() if op.get_friendly_name() == LM_HEAD)
    result = model.output("logits").get_node()
    indices = ops.parameter([-1], ov.Type.i64, name=GATHER_INPUT)
    indices.output(0).get_tensor().set_names({GATHER_INPUT})
    axis = np.array(0, dtype=np.int64)
    head.input(0).replace_source_output(ops.gather(head.input_value(0), indices, axis).output(0))
    token_slot = ops.unsqueeze(ops.gather(slot, indices, axis), np.array([2], np.int64))
    logits = head.output(0)
    blocked = ops.constant(np.array(-np.inf, dtype=np.float32))
    blocks = [ops.select(ops.equal(token_slot, ops.constant(np.array(k, dtype=np.int64))),
                         logits, blocked) for k in range(n + 1)]
    widened = ops.concat(blocks, -1)
    result.input(0).replace_source_output(widened.output(0))
    model.add_parameters([indices])
    model.validate_nodes_and_infer_types()


def widen_detokenizer(model: Any, vocab: int, copies: int = 1) -> None:
    """Put ``ids mod vocab`` in front of a detokenizer model, in place; and make its
    vocabulary ``copies`` times as long (each slot's block naming the same strings), so
    that structured output, whose grammar openvino-genai builds from this vocabulary, sees
    every slot's token ``k * vocab + t`` as the text of ``t``."""
    import openvino.opset13 as ops

    ids = model.inputs[0]
    consumers = list(ids.get_target_inputs())
    dtype = ids.get_element_type().to_dtype()
    wrapped = ops.floor_mod(ids, ops.constant(np.array(vocab, dtype=dtype)))
    for consumer in consumers:
        consumer.replace_source_output(wrapped.output(0))
    if copies > 1:
        decoders = [op for op in model.get_ops() if op.get_type_name() == "VocabDecoder"]
        for decoder in decoders:
            for index in (1, 2):  # the tokens' begin and end offsets in the characters
                const = decoder.input(index).get_source_output().get_node()
                data = const.get_data()
                if len(data) == vocab:
                    tiled = ops.constant(np.tile(data, copies))
                    decoder.input(index).replace_source_output(tiled.output(0))
    model.validate_nodes_and_infer_types()


def build_model_dir(models_path: Path, slots: Sequence[LoraWeights | None], rank: int,
                    out_dir: Path) -> int:
    """Write a model directory for ``slots`` into ``out_dir``: the rewritten model and
    detokenizer, every other file linked to ``models_path``. Returns the base vocabulary size."""
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the detokenizer's operations)

    core = ov.Core()
    model = core.read_model(models_path / "openvino_model.xml")
    vocab = vocab_size(model)
    add_adapters(model, slots, rank)
    ov.save_model(model, out_dir / "openvino_model.xml", compress_to_fp16=False)
    detokenizer = core.read_model(models_path / "openvino_detokenizer.xml")
    widen_detokenizer(detokenizer, vocab, copies=len(slots) + 1)
    ov.save_model(detokenizer, out_dir / "openvino_detokenizer.xml", compress_to_fp16=False)
    for item in models_path.iterdir():
        target = out_dir / item.name
        if not target.exists():
            target.symlink_to(item.resolve())
    return vocab
