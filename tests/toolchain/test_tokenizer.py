"""The corrected tokenizer gives exactly the GGUF's own token ids.

The reference is OpenVINO GenAI's GGUF reader, which builds its tokenizer straight from the
GGUF metadata (vocabulary, merges, pre-tokenizer type) with no transformers involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openvino_genai as ov_genai
import pytest
from transformers import AutoTokenizer

from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from ovserve.toolchain.gguf_source import fetch_gguf
from ovserve.toolchain.hf_from_gguf import read_tokenizer_info
from tests.conftest import plugin_config

SAMPLES = [
    "What is the theory of relativity?",
    "héllo wörld, ünïcode: 日本語のテキスト, Ελληνικά, русский, עברית",
    "emoji 😀🚀👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",
    "numbers 12345 3.14159 -42 1e-9 2024-11-22",
    "  leading spaces, double  spaces,\ttabs\n\nand blank lines   ",
    "▁ is a literal U+2581 and Ġ is a literal U+0120",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "don't won't I'll WE'RE y'all",
]


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    return fetch_gguf(BUILTIN_MODELS[DEFAULT_MODEL])


@pytest.fixture(scope="module")
def gguf_tokenizer(gguf_path: Path) -> Any:
    return ov_genai.LLMPipeline(str(gguf_path), "CPU", **plugin_config()).get_tokenizer()


def gguf_ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
    return ids


@pytest.mark.parametrize("text", SAMPLES)
def test_hf_tokenizer_matches_gguf(default_model_dir: Path, gguf_tokenizer: Any, text: str) -> None:
    hf = AutoTokenizer.from_pretrained(str(default_model_dir))
    ids = hf.encode(text)  # default add_special_tokens: must not prepend BOS
    assert ids == gguf_ids(gguf_tokenizer, text)
    assert hf.decode(ids) == text


@pytest.mark.parametrize("text", SAMPLES)
def test_openvino_tokenizer_matches_gguf(
    default_model_dir: Path, gguf_tokenizer: Any, text: str
) -> None:
    ov_tokenizer = ov_genai.Tokenizer(str(default_model_dir))
    ids = ov_tokenizer.encode(text, add_special_tokens=True).input_ids.data[0].tolist()
    assert ids == gguf_ids(gguf_tokenizer, text)
    assert ov_tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_follow_the_gguf(default_model_dir: Path, gguf_path: Path) -> None:
    info = read_tokenizer_info(gguf_path)
    hf = AutoTokenizer.from_pretrained(str(default_model_dir))
    assert len(hf) == len(info.tokens)  # no FIM tokens appended past the vocabulary
    assert hf.eos_token == "<|im_end|>" and hf.eos_token_id == info.eos_id
    assert hf.bos_token_id == info.bos_id
    ov_tokenizer = ov_genai.Tokenizer(str(default_model_dir))
    assert ov_tokenizer.get_eos_token_id() == info.eos_id
    assert ov_tokenizer.chat_template == info.chat_template


def test_uncorrected_transformers_tokenizer_would_be_caught(
    gguf_path: Path, gguf_tokenizer: Any
) -> None:
    """The comparison above has teeth: transformers' own GGUF tokenizer fails it."""
    broken = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    text = SAMPLES[0]
    assert broken.encode(text) != gguf_ids(gguf_tokenizer, text)  # it prepends <|im_start|>
    assert broken.eos_token != "<|im_end|>"
