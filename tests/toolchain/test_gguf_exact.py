"""The built-in model with its GGUF's own 4-bit weights (download_model.py --weight-format gguf,
compress_model.py --formats gguf): the IR's weights are the GGUF's dequantized weights, the CPU
plugin runs every projection as a compressed u4 FullyConnected, and the model computes what the
GGUF's model computes (transformers on its dequantized weights, fp32) far closer than the int8
default does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino_genai as ov_genai
import pytest

from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from ovserve.toolchain.compress import variant_path
from ovserve.toolchain.download import prepare
from ovserve.toolchain.gguf_source import fetch_gguf
from tests.conftest import REPO, plugin_config
from tests.toolchain.coherence import PARAGRAPH, assert_coherent
from tests.toolchain.gguf_weights import assert_gguf_weights, ir_weights

LAYERS, HEADS, KV_HEADS = 30, 9, 3
PROJECTIONS = 7 * LAYERS


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    return fetch_gguf(BUILTIN_MODELS[DEFAULT_MODEL])


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(DEFAULT_MODEL, tmp_path_factory.mktemp("gguf") / "smol", "gguf", force=False)


def test_provenance_names_the_gguf(exact: Path, gguf_file: Path) -> None:
    record = json.loads((exact / "ovserve_model.json").read_text())
    assert record["weight_format"] == "gguf" and record["gguf_file"] == gguf_file.name
    assert record["gguf_types"] == ["Q4_1", "Q8_0"] and record["group_size"] == 32


def test_weights_are_the_ggufs_dequantized_weights(exact: Path, gguf_file: Path) -> None:
    # every projection, and the tied embedding / head
    assert assert_gguf_weights(exact, gguf_file, HEADS, KV_HEADS) == PROJECTIONS + 1


def test_the_cpu_runs_every_projection_as_a_compressed_fully_connected(exact: Path) -> None:
    compiled = ov.Core().compile_model(exact / "openvino_model.xml", "CPU", plugin_config())
    kinds: Counter[tuple[str, str]] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        layer = op.get_rt_info()["layerType"].astype(str)
        if layer == "FullyConnected":
            kinds[(layer, op.input(1).get_element_type().get_type_name())] += 1
    # u4 weights with f32 scale and zero point inputs: the decompression is inside the kernel
    assert kinds == {("FullyConnected", "u4"): PROJECTIONS, ("FullyConnected", "i8"): 1}, kinds


def logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    core = ov.Core()
    # f32 and no dynamic quantization of activations: the weights' arithmetic alone
    request = core.compile_model(folder / "openvino_model.xml", "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
    }).create_infer_request()
    result: Any = request.infer({
        "input_ids": ids, "attention_mask": np.ones_like(ids),
        "position_ids": np.arange(ids.shape[1], dtype=np.int64)[None],
        "beam_idx": np.zeros(1, dtype=np.int32)})
    return np.asarray(result["logits"][0])


def test_it_computes_the_ggufs_model(exact: Path, default_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from ovserve.toolchain.gguf_source import cache_dir

    checkpoint = sorted((cache_dir() / "hf").glob(f"{DEFAULT_MODEL}-v*"))[-1]
    ids = ov_genai.Tokenizer(str(exact)).encode(PARAGRAPH).input_ids.data.astype(np.int64)
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(ids)).logits[0].numpy()
    ours = np.abs(logits(exact, ids) - reference)
    int8 = np.abs(logits(default_model_dir, ids) - reference)
    assert ours.mean() < 0.03 and ours.max() < 0.3, (ours.mean(), ours.max())
    assert ours.mean() < int8.mean() / 5, (ours.mean(), int8.mean())
    agree = (logits(exact, ids).argmax(-1) == reference.argmax(-1)).mean()
    assert agree >= 0.98, agree


def test_answers_coherently(exact: Path) -> None:
    pipe = ov_genai.LLMPipeline(str(exact), "CPU", **plugin_config())
    config = ov_genai.GenerationConfig(max_new_tokens=96, min_new_tokens=96, do_sample=False)
    result: Any = pipe.generate(["What is the theory of relativity?"], config)
    assert result.perf_metrics.get_num_generated_tokens() == 96
    assert "<|im" not in result.texts[0]
    assert_coherent(result.texts[0])


def test_compress_model_makes_the_same_weights_from_an_fp16_export(
        exact: Path, gguf_file: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    fp16 = prepare(DEFAULT_MODEL, tmp_path_factory.mktemp("fp16") / "smol", "fp16", force=False)
    script = [sys.executable, str(REPO / "scripts" / "compress_model.py"), "--model", str(fp16)]
    refused = subprocess.run([*script, "--formats", "gguf"], capture_output=True, text=True)
    assert refused.returncode == 1 and "--gguf" in refused.stderr
    result = subprocess.run([*script, "--formats", "gguf", "--gguf", str(gguf_file)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    variant = variant_path(fp16, "gguf")
    assert variant.name == "smol_GGUF_weights" and str(variant) in result.stdout
    theirs, ours = ir_weights(variant), ir_weights(exact)
    assert theirs.keys() == ours.keys()
    for name in ours:
        assert np.array_equal(theirs[name], ours[name]), name
