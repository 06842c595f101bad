"""make_shaped_model.py on a tiny config of TinyLlama's architecture (GQA 8:1, untied head,
intermediate 2.75 x hidden, 32,000 tokens): its int8, int4 and gguf-weights folders are laid out
like the built-in model's and a real ovserve serves them; its GGUF holds the checkpoint's weights
(Q and K permuted as llama.cpp expects), openvino-genai's GGUF reader runs it, and the
gguf-weights folder holds the GGUF's own weights."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openvino_genai as ov_genai
import pytest

from ovserve.toolchain.gguf_writer import gguf_name, permute_rows
from ovserve.toolchain.shaped_model import TINYLLAMA_1_1B, build_checkpoint
from tests.conftest import REPO, plugin_config
from tests.toolchain.gguf_weights import assert_gguf_weights
from tests.transport.server import Server, start_server

SCRIPT = REPO / "scripts" / "make_shaped_model.py"
TINY = {"hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 1}
TEXT = "Grüße, 世界! 🚀 def f(x):\n    return x ** 2  # ∑"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shaped")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(root), "--name", "tiny", "--seed", "3",
         "--config", json.dumps(TINY), "--keep-work"],
        capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("tiny-int8", "tiny-int4", "tiny.Q4_1.gguf", "tiny-gguf-weights"):
        assert str(root / name) in result.stdout  # what was written where
        assert str(root / name) in result.stderr  # ... and in the log
    return root


def test_folders_are_laid_out_like_the_builtin_model(made: Path,
                                                     default_model_dir: Path) -> None:
    # optimum writes openvino_config.json for its own compression; NNCF on the IR does not
    builtin = {p.name for p in default_model_dir.iterdir()} - {"openvino_config.json"}
    for fmt, recorded in (("int8", "int8"), ("int4", "int4"), ("gguf-weights", "gguf")):
        folder = made / f"tiny-{fmt}"
        assert builtin <= {p.name for p in folder.iterdir()}, fmt
        assert ((folder / "graph.pbtxt").read_text()
                == (default_model_dir / "graph.pbtxt").read_text())
        record = json.loads((folder / "ovserve_model.json").read_text())
        assert record["weight_format"] == recorded and record["kind"] == "llm"
        assert record["seed"] == 3 and record["config"]["hidden_size"] == 128
        config = json.loads((folder / "config.json").read_text())
        for key, value in {**TINYLLAMA_1_1B, **TINY}.items():
            if key not in ("architectures", "rope_theta"):
                assert config[key] == value, key


def test_the_tokenizer_is_cut_to_the_shape_vocabulary(made: Path) -> None:
    tokenizer = ov_genai.Tokenizer(str(made / "tiny-int8"))
    ids = tokenizer.encode(TEXT, add_special_tokens=False).input_ids.data[0].tolist()
    assert ids and max(ids) < 32000
    assert tokenizer.decode(ids) == TEXT
    template = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert template.startswith("<|im_start|>") and template.endswith("assistant\n")


@pytest.fixture(scope="module")
def server(made: Path) -> Iterator[Server]:
    config = made / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "tiny-int8", "base_path": str(made / "tiny-int8")},
        {"name": "tiny-int4", "base_path": str(made / "tiny-int4")},
        {"name": "tiny-gguf-weights", "base_path": str(made / "tiny-gguf-weights")}]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


@pytest.mark.parametrize("model", ["tiny-int8", "tiny-int4", "tiny-gguf-weights"])
def test_a_real_server_serves_both_folders(server: Server, model: str) -> None:
    response = httpx.post(f"{server.rest_url}/v3/chat/completions", timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": 12, "ignore_eos": True, "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] == 12
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"]


def _dequantized(made: Path) -> dict[str, tuple[np.ndarray, str]]:
    import gguf

    reader = gguf.GGUFReader(str(made / "tiny.Q4_1.gguf"))
    return {t.name: (gguf.quants.dequantize(t.data, t.tensor_type), t.tensor_type.name)
            for t in reader.tensors}


def test_the_gguf_holds_the_checkpoints_weights(made: Path) -> None:
    import gguf
    from safetensors.numpy import load_file

    fields = gguf.GGUFReader(str(made / "tiny.Q4_1.gguf")).fields
    meta = {k: fields[k].contents() for k in (
        "llama.block_count", "llama.embedding_length", "llama.feed_forward_length",
        "llama.attention.head_count", "llama.attention.head_count_kv", "general.file_type")}
    assert meta == {"llama.block_count": 2, "llama.embedding_length": 128,
                    "llama.feed_forward_length": 352, "llama.attention.head_count": 8,
                    "llama.attention.head_count_kv": 1, "general.file_type": 3}
    assert len(fields["tokenizer.ggml.tokens"].contents()) == 32000
    assert "<|im_start|>" in str(fields["tokenizer.chat_template"].contents())

    hf = load_file(str(made / ".tiny-work" / "hf" / "model.safetensors"))
    tensors = _dequantized(made)
    assert set(tensors) == {gguf_name(name) for name in hf}
    for name, weights in hf.items():
        data, kind = tensors[gguf_name(name)]
        expected = weights.astype(np.float32)
        if "q_proj" in name:
            expected = permute_rows(expected, 8)
        elif "k_proj" in name:
            expected = permute_rows(expected, 1)
        assert data.shape == expected.shape, name
        if kind == "Q4_1":  # error at most half a step: (max - min) / 15 / 2 per block
            blocks = expected.reshape(-1, 32)
            step = (blocks.max(axis=1) - blocks.min(axis=1)) / 15
            error = np.abs(data.reshape(-1, 32) - blocks).max(axis=1)
            assert (error <= step * 0.52 + 1e-4).all(), name
        else:
            assert kind in ("Q8_0", "F32"), (name, kind)
            assert np.abs(data - expected).max() <= np.abs(expected).max() / 127, name
        assert kind == ("F32" if "norm" in name else
                        "Q8_0" if "embed" in name or "lm_head" in name else "Q4_1"), name


def test_the_gguf_weights_folder_holds_the_ggufs_weights(made: Path) -> None:
    record = json.loads((made / "tiny-gguf-weights" / "ovserve_model.json").read_text())
    assert record["gguf_file"] == "tiny.Q4_1.gguf" and record["gguf_types"] == ["Q4_1", "Q8_0"]
    # 7 projections per layer, the embedding and the untied head
    assert assert_gguf_weights(made / "tiny-gguf-weights", made / "tiny.Q4_1.gguf", 8, 1) == 16


def test_openvino_genai_runs_the_gguf(made: Path) -> None:
    pipe = ov_genai.LLMPipeline(str(made / "tiny.Q4_1.gguf"), "CPU", **plugin_config())
    config = ov_genai.GenerationConfig(max_new_tokens=10, ignore_eos=True)
    result: Any = pipe.generate(["Hello there"], config)
    assert result.perf_metrics.get_num_generated_tokens() == 10
    assert len(result.texts) == 1


def test_weights_follow_the_seed(tmp_path: Path, made: Path) -> None:
    from safetensors.numpy import load_file

    tokenizer = made / ".tiny-work" / "hf"
    config = {**TINYLLAMA_1_1B, **TINY, "num_hidden_layers": 1}
    runs = {}
    for label, seed in (("a", 5), ("b", 5), ("c", 6)):
        build_checkpoint(config, tokenizer, tmp_path / label, seed)
        runs[label] = load_file(str(tmp_path / label / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    assert np.array_equal(runs["a"][name], runs["b"][name])
    assert not np.array_equal(runs["a"][name], runs["c"][name])
    assert 0.015 < float(runs["a"][name].std()) < 0.025  # initializer_range 0.02
