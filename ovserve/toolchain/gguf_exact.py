"""An OpenVINO IR whose weights are a Q4_1 GGUF's own 4-bit weights, not a re-quantization.

A Q4_1 block holds 32 four-bit values q with an f16 scale d and an f16 minimum m: w = d*q + m.
openvino-genai's GGUF reader writes that as (q - z) * d with an integer zero point
z = round(-m/d), moving every weight by up to half a step (its text on the built-in model loops);
NNCF's int4 on the dequantized weights re-rounds them to a new grid. Here each matmul of an
optimum export (same graph, KV cache and tokenizer) gets the GGUF's q as u4 in groups of 32, d as
the f16 scale and z = -m/d kept fractional as an f16 zero point: the decompression shape NNCF
writes (u4 -> f16, minus zero point, times scale), which the CPU plugin folds into its compressed
FullyConnected (u4 weights, scale and zero point as f32 side inputs). Q8_0 tensors (the built-in
model's tied embedding and head) become i8 with f16 scales, exactly. The only rounding left is z
in f16: at most d * |z| * 2**-11 per weight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ovserve.errors import ToolchainError
from ovserve.toolchain.gguf_writer import gguf_name, permute_rows

log = logging.getLogger(__name__)

GROUP = 32
HF_LAYER_TENSORS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                    "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class Quantized:
    """One GGUF tensor's blocks, rows in Hugging Face order: ``q`` [rows, groups, 32] (u8
    holding 0..15 for Q4_1, i8 for Q8_0), ``scale`` and ``zero_point`` [rows, groups] f16
    (``zero_point`` None for Q8_0)."""

    kind: str
    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None

    def dequantized(self) -> np.ndarray:
        """What the compressed FullyConnected computes from the IR's constants (f32)."""
        scale = self.scale.astype(np.float32)[..., None]
        values = self.q.astype(np.float32)
        if self.zero_point is not None:
            values = values - self.zero_point.astype(np.float32)[..., None]
        return (values * scale).reshape(self.q.shape[0], -1)


def _blocks(raw: np.ndarray, block_bytes: int) -> np.ndarray:
    rows = raw.shape[0]
    if raw.shape[-1] % block_bytes:
        raise ToolchainError(f"a row of {raw.shape[-1]} bytes is not whole blocks")
    return np.ascontiguousarray(raw).reshape(rows, -1, block_bytes)


def q4_1(raw: np.ndarray) -> Quantized:
    """Q4_1 blocks (f16 d, f16 m, 16 bytes: values 0-15 in the low nibbles, 16-31 in the high)
    as u4 values with scale d and the fractional zero point -m/d."""
    blocks = _blocks(raw, 20)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0]
    packed = blocks[..., 4:20]
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)
    d32, m32 = d.astype(np.float32), m.astype(np.float32)
    flat = d32 == 0  # every weight of the block is m: one step of size m from zero point -1
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = np.where(flat, np.where(m32 != 0, -1.0, 0.0), -m32 / d32)
    scale = np.where(flat, m32, d32).astype(np.float16)
    q = np.where(flat[..., None], 0, q).astype(np.uint8)
    if not np.isfinite(zero.astype(np.float16)).all():
        raise ToolchainError("a Q4_1 zero point does not fit f16")
    return Quantized("Q4_1", q, scale, zero.astype(np.float16))


def q8_0(raw: np.ndarray) -> Quantized:
    """Q8_0 blocks (f16 d, 32 int8 values) as i8 values with scale d."""
    blocks = _blocks(raw, 34)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    q = blocks[..., 2:34].copy().view(np.int8)
    return Quantized("Q8_0", q, d, None)


READERS = {"Q4_1": q4_1, "Q8_0": q8_0}


def hf_order(tensor: Quantized, heads: int) -> Quantized:
    """Rows from llama.cpp's rotary layout back to Hugging Face's (the inverse of
    ``permute_rows``; blocks run along the input dimension, so whole rows move)."""
    order = np.argsort(permute_rows(np.arange(tensor.q.shape[0]), heads))
    zero = None if tensor.zero_point is None else tensor.zero_point[order]
    return Quantized(tensor.kind, tensor.q[order], tensor.scale[order], zero)


def read_gguf(path: Path) -> tuple[dict[str, Quantized], dict[str, Any]]:
    """The quantized matmul/embedding tensors of a Llama GGUF, by Hugging Face name, and its
    fields (head counts, layer count)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: reader.fields[k].contents() for k in (
        "general.architecture", "llama.block_count", "llama.attention.head_count",
        "llama.attention.head_count_kv") if k in reader.fields}
    if fields.get("general.architecture") != "llama":
        raise ToolchainError(f"{path.name} is not a llama GGUF")
    heads = int(fields["llama.attention.head_count"])
    kv_heads = int(fields.get("llama.attention.head_count_kv", heads))
    names = {"model.embed_tokens.weight", "lm_head.weight"} | {
        f"model.layers.{i}.{t}.weight" for i in range(int(fields["llama.block_count"]))
        for t in HF_LAYER_TENSORS}
    by_gguf = {gguf_name(n): n for n in names}
    tensors: dict[str, Quantized] = {}
    for tensor in reader.tensors:
        hf = by_gguf.get(tensor.name)
        if hf is None:
            continue
        kind = tensor.tensor_type.name
        if kind not in READERS:
            raise ToolchainError(f"{path.name}: {tensor.name} is {kind}; only Q4_1 and Q8_0 "
                                 "weights are kept exactly")
        quantized = READERS[kind](np.asarray(tensor.data))
        if hf.endswith("q_proj.weight"):
            quantized = hf_order(quantized, heads)
        elif hf.endswith("k_proj.weight"):
            quantized = hf_order(quantized, kv_heads)
        tensors[hf] = quantized
    return tensors, fields


def _constant(values: np.ndarray, element: Any) -> Any:
    import openvino as ov

    if element == ov.Type.u4:
        tensor = ov.Tensor(ov.Type.u4, ov.Shape(list(values.shape)))
        flat = values.reshape(-1)
        tensor.data[:] = flat[0::2] | (flat[1::2] << 4)  # element 2i low nibble, 2i+1 high
        return ov.op.Constant(tensor)
    return ov.op.Constant(np.ascontiguousarray(values))


def decompression(tensor: Quantized, name: str) -> Any:
    """The IR subgraph of one tensor: its f32 weights [rows, cols] from the compressed
    constants, in the shape the CPU plugin folds into a compressed FullyConnected."""
    import openvino as ov
    from openvino import opset13 as ops

    rows, groups, _ = tensor.q.shape
    element = ov.Type.u4 if tensor.kind == "Q4_1" else ov.Type.i8
    weights = _constant(tensor.q, element)
    weights.set_friendly_name(name)
    node = ops.convert(weights, ov.Type.f16)
    if tensor.zero_point is not None:
        zero = _constant(tensor.zero_point[..., None], ov.Type.f16)
        zero.set_friendly_name(f"{name}/zero_point")
        node = ops.subtract(node, zero)
    scale = _constant(tensor.scale[..., None], ov.Type.f16)
    scale.set_friendly_name(f"{name}/scale")
    node = ops.multiply(node, scale)
    node = ops.reshape(node, ops.constant(np.array([rows, groups * GROUP], np.int64)), False)
    return ops.convert(node, ov.Type.f32).output(0)


def _weight_name(node: Any) -> str:
    """The Hugging Face name of an exported weight constant: optimum names it
    ``self.<name>_compressed`` (fp32 checkpoints) or ``self.<module>._openvino_orig_weight``
    (fp16 checkpoints)."""
    name = str(node.get_friendly_name()).removeprefix("self.").removesuffix("_compressed")
    if name.endswith("._openvino_orig_weight"):
        name = name.removesuffix("._openvino_orig_weight") + ".weight"
    return name


def replace_weights(model: Any, tensors: dict[str, Quantized]) -> list[str]:
    """Point every consumer of an exported weight (its Constant, or the Convert after an fp16
    one) at the GGUF tensor of the same name; returns the names replaced. A tied embedding is
    one constant in the IR and one GGUF tensor: its Gather and the head share the subgraph."""
    replaced = []
    built: dict[str, Any] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or _weight_name(op) not in tensors:
            continue
        name = _weight_name(op)
        output = op.output(0)
        targets = list(output.get_target_inputs())
        if len(targets) == 1 and targets[0].get_node().get_type_name() == "Convert":
            output = targets[0].get_node().output(0)
        quantized = tensors[name]
        shape = list(op.get_output_shape(0))
        if shape != [quantized.q.shape[0], quantized.q.shape[1] * GROUP]:
            raise ToolchainError(f"{name}: the export has {shape}, the GGUF "
                                 f"{list(quantized.q.shape)}")
        if name not in built:
            built[name] = decompression(quantized, name)
        output.replace(built[name])
        replaced.append(name)
    missing = sorted(set(tensors) - set(replaced))
    if missing:
        raise ToolchainError(f"the export has no weight named {missing[0]} "
                             f"({len(missing)} GGUF tensors unmatched)")
    return replaced


def rewrite_folder(folder: Path, gguf_path: Path) -> dict[str, Any]:
    """Replace the weights of the export in ``folder`` (fp32 or fp16, of the same model as
    ``gguf_path``) with the GGUF's; returns what ``ovserve_model.json`` records of it."""
    import openvino as ov

    tensors, _ = read_gguf(gguf_path)
    model = ov.Core().read_model(folder / "openvino_model.xml")
    replaced = replace_weights(model, tensors)
    kinds = sorted({tensors[name].kind for name in replaced})
    partial = folder / "openvino_model.gguf-partial.xml"
    ov.save_model(model, partial, compress_to_fp16=False)
    del model
    partial.with_suffix(".bin").replace(folder / "openvino_model.bin")
    partial.replace(folder / "openvino_model.xml")
    log.info("%s: %d weights taken from %s as they are (%s in groups of %d)", folder,
             len(replaced), gguf_path.name, ", ".join(kinds), GROUP)
    return {"gguf_file": gguf_path.name, "gguf_types": kinds, "group_size": GROUP}
