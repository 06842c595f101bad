"""Hugging Face checkpoint (local or on the hub) -> OpenVINO IR with tokenizer models.

Runs ``optimum-cli export openvino`` in a child process: it is the tested path (export, NNCF
weight compression, tokenizer conversion with the chat template), and the export's ~1.3 GB peak
memory goes away with the child.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from ovserve.errors import ToolchainError

log = logging.getLogger(__name__)

WEIGHT_FORMATS = ("fp32", "fp16", "int8")
DEFAULT_WEIGHT_FORMAT = "int8"
REQUIRED_FILES = ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml")
#: what each kind of model needs, and the optimum task that exports it
KIND_FILES = {"llm": REQUIRED_FILES,
              "embedding": ("openvino_model.xml", "openvino_tokenizer.xml")}
KIND_TASKS = {"llm": "text-generation-with-past", "embedding": "feature-extraction"}


def optimum_cli() -> list[str]:
    exe = Path(sys.executable).with_name("optimum-cli")
    if not exe.exists():
        raise ToolchainError(
            "optimum-cli is not installed in this environment; run `make` (or install "
            "requirements/export.txt) to get the export toolchain"
        )
    return [str(exe)]


def export_ir(source: str, output: Path, weight_format: str, kind: str = "llm") -> None:
    """Export ``source`` (a local HF directory or a hub id) to OpenVINO IR in ``output``;
    ``kind``: "llm" (text generation with KV cache) or "embedding" (the encoder's hidden
    states, pooled by openvino-genai's TextEmbeddingPipeline)."""
    if weight_format not in WEIGHT_FORMATS:
        raise ToolchainError(
            f"--weight-format {weight_format!r} is not one of {', '.join(WEIGHT_FORMATS)}"
        )
    cmd = [
        *optimum_cli(), "export", "openvino", "--model", source,
        "--task", KIND_TASKS[kind], "--weight-format", weight_format, str(output),
    ]
    if kind == "embedding":  # the transformer alone: pooling is the pipeline's job
        cmd[-1:-1] = ["--library", "transformers"]
    log.info("exporting %s to OpenVINO IR (%s): %s", source, weight_format, " ".join(cmd))
    result = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        raise ToolchainError(
            f"exporting {source} failed: {lines[-1] if lines else 'optimum-cli exited with '}"
            f"{'' if lines else result.returncode}"
        )
    missing = [name for name in KIND_FILES[kind] if not (output / name).is_file()]
    if missing:
        raise ToolchainError(f"exporting {source} produced no {', '.join(missing)}")
