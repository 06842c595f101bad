"""Check an OpenVINO folder made by gguf_exact against its GGUF: the weights the IR holds,
decompressed as the CPU's FullyConnected does, against the gguf package's dequantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from ovserve.toolchain.gguf_writer import gguf_name, permute_rows


def ir_weights(folder: Path) -> dict[str, np.ndarray]:
    """Each GGUF weight as the IR holds it: (q - zero point) * scale in f32, q unpacked from u4
    (element 2i in the low nibble) or i8."""
    constants = {op.get_friendly_name(): op for op in
                 ov.Core().read_model(folder / "openvino_model.xml").get_ordered_ops()
                 if op.get_type_name() == "Constant"}
    weights = {}
    for name, op in constants.items():
        if f"{name}/scale" not in constants:
            continue
        shape = list(op.get_output_shape(0))
        raw = np.asarray(op.get_data())
        if op.get_output_element_type(0) == ov.Type.u4:
            q = np.stack([raw & 0x0F, raw >> 4], axis=-1).reshape(shape).astype(np.float32)
        else:
            q = raw.reshape(shape).astype(np.float32)
        if f"{name}/zero_point" in constants:
            q -= np.asarray(constants[f"{name}/zero_point"].get_data(), np.float32)
        scale = np.asarray(constants[f"{name}/scale"].get_data(), np.float32)
        weights[name] = (q * scale).reshape(shape[0], -1)
    return weights


def assert_gguf_weights(folder: Path, gguf_file: Path, heads: int, kv_heads: int) -> int:
    """Every weight of ``folder`` equals the GGUF's (Q8_0 exactly; Q4_1 within 1/256 of its
    block's step d: only the f16 zero point rounds); returns how many were compared."""
    import gguf

    weights = ir_weights(folder)
    tensors = {t.name: t for t in gguf.GGUFReader(str(gguf_file)).tensors}
    for name, ours in weights.items():
        tensor = tensors[gguf_name(name)]
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        count = heads if "q_proj" in name else kv_heads if "k_proj" in name else 0
        # llama.cpp's rotary row order back to Hugging Face's
        order = (np.argsort(permute_rows(np.arange(expected.shape[0]), count)) if count
                 else np.arange(expected.shape[0]))
        expected = expected[order]
        assert ours.shape == expected.shape, name
        error = np.abs(ours - expected)
        if tensor.tensor_type.name == "Q8_0":
            assert error.max() == 0, name
        else:
            assert tensor.tensor_type.name == "Q4_1", name
            blocks = tensor.data.reshape(tensor.data.shape[0], -1, 20)[order]
            step = np.abs(blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32))
            per_block = error.reshape(step.shape[0], step.shape[1], 32).max(axis=-1)
            assert (per_block <= step / 256 + 1e-7).all(), name
    return len(weights)
