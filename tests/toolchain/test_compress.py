"""compress_model.py on a real fp32 export: every variant loads, generates and predicts English
about as well as the export; sizes shrink."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openvino_genai as ov_genai
import pytest

from ovserve.toolchain.compress import int4_group_size, variant_path
from ovserve.toolchain.download import prepare
from ovserve.toolchain.staging import directory_size
from tests.conftest import REPO, plugin_config
from tests.toolchain.coherence import PARAGRAPH, mean_nll

SCRIPT = REPO / "scripts" / "compress_model.py"
FORMATS = ("fp16", "int8", "int4")


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compress")
    return prepare("smollm2-135m-instruct", root / "smol", "fp32", force=False)


@pytest.fixture(scope="module")
def variants(fp32_model: Path) -> dict[str, Path]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(fp32_model)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    paths = {fmt: variant_path(fp32_model, fmt) for fmt in FORMATS}
    for fmt, path in paths.items():
        assert str(path) in result.stdout, f"size of {fmt} not printed: {result.stdout}"
    return paths


def test_variant_names_follow_the_seed(fp32_model: Path, variants: dict[str, Path]) -> None:
    assert [p.name for p in variants.values()] == [
        "smol_FP16", "smol_INT8_compressed_weights", "smol_INT4_compressed_weights"
    ]


def test_sizes_shrink(fp32_model: Path, variants: dict[str, Path]) -> None:
    sizes = [directory_size(fp32_model)] + [directory_size(variants[f]) for f in FORMATS]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4, sizes


@pytest.fixture(scope="module")
def fp32_nll(fp32_model: Path) -> float:
    return mean_nll(fp32_model, PARAGRAPH, plugin_config())


@pytest.mark.parametrize("fmt", FORMATS)
def test_variant_loads_and_generates(variants: dict[str, Path], fmt: str) -> None:
    """Each variant generates exactly the tokens forced (EOS cannot end it early) in
    openvino-genai; what they say is not checked (see the likelihood test below)."""
    path = variants[fmt]
    for name in ("openvino_tokenizer.xml", "openvino_detokenizer.xml", "config.json"):
        assert (path / name).is_file(), f"{name} not copied into {path}"
    record = json.loads((path / "ovserve_model.json").read_text())
    assert record["weight_format"] == fmt
    pipe = ov_genai.LLMPipeline(str(path), "CPU", **plugin_config())
    result = pipe.generate(
        ["What is the theory of relativity?"],
        ov_genai.GenerationConfig(max_new_tokens=32, min_new_tokens=32, do_sample=False),
    )
    assert result.perf_metrics.get_num_generated_tokens() == 32
    assert result.texts[0], result.texts


# how far each compression may move the paragraph's likelihood, in nats per token (measured on
# SmolLM2-135M: a hundredth or two for each)
NLL_COST = {"fp16": 0.1, "int8": 0.15, "int4": 0.5}


@pytest.mark.parametrize("fmt", FORMATS)
def test_variant_predicts_english_about_as_well_as_fp32(
    variants: dict[str, Path], fp32_nll: float, fmt: str
) -> None:
    """Compression keeps the model: teacher-forced, the variant's mean negative log-likelihood
    of a plain English paragraph is within a small cost of the fp32 export's (one forward
    pass each, so the CPU's kernels move it by hundredths, never by a flipped near-tie)."""
    nll = mean_nll(variants[fmt], PARAGRAPH, plugin_config())
    assert fp32_nll < 3.5, fp32_nll
    assert abs(nll - fp32_nll) < NLL_COST[fmt], (fmt, nll, fp32_nll)


def test_int4_group_size_divides_hidden_size(variants: dict[str, Path]) -> None:
    record = json.loads((variants["int4"] / "ovserve_model.json").read_text())
    assert record["group_size"] == 64  # 128 does not divide SmolLM2's hidden size 576
    assert int4_group_size({"hidden_size": 4096, "intermediate_size": 11008}) == 128
    assert int4_group_size({"hidden_size": 576, "intermediate_size": 1536}) == 64


def test_refuses_already_compressed_model(default_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "int8model"
    source.symlink_to(default_model_dir, target_is_directory=True)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(source), "--formats", "int4"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "already has int8 weights" in result.stderr
    assert "--weight-format fp32" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8model"]


def test_unknown_format_is_named(fp32_model: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(fp32_model), "--formats", "int3"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "unknown format int3" in result.stderr
