"""``scripts/make_shaped_model.py``: a model with a real model's shape and random weights, made
offline, to measure speed where weights (not Python) dominate.

No model hub is reachable, so TinyLlama-1.1B-Chat's weights are not either; its shape is enough
for speed. This builds a Llama with that config and seeded random weights, the built-in SmolLM2
tokenizer cut to the shape's vocabulary (``shaped_tokenizer``), and writes:

- ``<root>/<name>-int8`` and ``<root>/<name>-int4``: OpenVINO folders laid out like the built-in
  model's (tokenizer, detokenizer, chat template, ``graph.pbtxt``, ``ovserve_model.json``),
  made as ``compress_model.py`` makes its variants (NNCF on an fp16 export);
- ``<root>/<name>.<TYPE>.gguf``: the same weights for llama.cpp (``gguf_writer``);
- ``<root>/<name>-gguf-weights``: an OpenVINO folder holding that GGUF's own 4-bit weights
  (``gguf_exact``, as ``compress_model.py --formats gguf`` makes it): the same bytes per weight
  as llama.cpp reads.

Random weights generate gibberish; the benchmark forces lengths with ignore_eos.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain import provenance, tool
from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from ovserve.toolchain.staging import directory_size, human_size

log = logging.getLogger("make_shaped_model")

#: TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json (the seed's default model), the fields
#: that decide the shape and the arithmetic
TINYLLAMA_1_1B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
    "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
    "initializer_range": 0.02,
}
SHAPES = {"tinyllama-1.1b": TINYLLAMA_1_1B}
FORMATS = ("int8", "int4", "gguf", "gguf-weights")
IR_FORMATS = {"int8": "int8", "int4": "int4", "gguf-weights": "gguf"}  # -> compress_model's


def build_checkpoint(config: dict[str, Any], tokenizer_dir: Path, output: Path,
                     seed: int) -> None:
    """A Hugging Face Llama checkpoint in ``output``: ``config``, weights drawn by transformers'
    initializer (normal, std ``initializer_range``) from ``seed``, kept in fp16, and the
    tokenizer of ``tokenizer_dir`` cut to the config's vocabulary."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from ovserve.toolchain.shaped_tokenizer import write_truncated_tokenizer

    output.mkdir(parents=True, exist_ok=True)
    write_truncated_tokenizer(tokenizer_dir, output, int(config["vocab_size"]))
    source_config = tokenizer_dir / "config.json"
    special = json.loads(source_config.read_text()) if source_config.is_file() else {}
    ids = {k: special.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    llama = LlamaConfig(**{**config, **ids})
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)  # 2 bytes a weight while it is built
    try:
        model = LlamaForCausalLM(llama)  # type: ignore[no-untyped-call]
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = GenerationConfig(**ids)  # type: ignore[no-untyped-call]
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(output))
    del model
    log.info("wrote a random-weight checkpoint (%.0fM parameters, seed %d) to %s",
             params / 1e6, seed, output)


def _openvino_variants(hf_dir: Path, work: Path, root: Path, name: str, formats: list[str],
                       force: bool, record: dict[str, Any], gguf: Path | None) -> list[Path]:
    from ovserve.toolchain.compress import compress_variant
    from ovserve.toolchain.export import export_ir
    from ovserve.toolchain.servable_graph import write_graph

    fp16 = work / "fp16"
    if not (fp16 / "openvino_model.xml").is_file():
        export_ir(str(hf_dir), fp16, "fp16")
        write_graph(fp16, "llm")
    written = []
    for fmt in formats:
        output = root / f"{name}-{fmt}"
        variant = compress_variant(fp16, IR_FORMATS[fmt], force, output, gguf=gguf)
        provenance.write(output, name=output.name, source=f"shaped:{name}", kind="llm",
                         weight_format=IR_FORMATS[fmt], **record, **_group(output))
        log.info("wrote %s (%s): %s in %.0f s", output, fmt, human_size(variant.size),
                 variant.seconds)
        written.append(output)
    return written


def _group(folder: Path) -> dict[str, Any]:
    """The int4 group size compress_model.py recorded (kept in the rewritten provenance)."""
    kept = ("group_size", "ratio", "gguf_file", "gguf_types")
    return {k: v for k, v in provenance.read(folder).items() if k in kept}


def make(shape: str, root: Path, name: str | None = None, seed: int = 0,
         formats: list[str] | None = None, gguf_type: str = "Q4_1", force: bool = False,
         tokenizer_dir: Path | None = None, config: dict[str, Any] | None = None,
         keep_work: bool = False) -> dict[str, Path]:
    """Write the formats of a ``shape``-shaped random model under ``root``; returns each format's
    path. ``config`` overrides the shape's (tests use a tiny one of the same architecture)."""
    from ovserve.toolchain.gguf_writer import write_gguf

    if shape not in SHAPES and config is None:
        raise ToolchainError(f"unknown shape {shape!r} (choose from {', '.join(SHAPES)})")
    config = {**SHAPES.get(shape, {}), **(config or {})}
    name = name or f"{shape}-shaped"
    formats = list(formats or FORMATS)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ToolchainError(f"unknown format {', '.join(unknown)} (choose from {FORMATS})")
    if "gguf-weights" in formats and "gguf" not in formats:
        formats.append("gguf")  # the folder takes its weights from the GGUF
    if "gguf-weights" in formats and gguf_type not in ("Q4_1", "Q8_0"):
        raise ToolchainError("gguf-weights keeps Q4_1 or Q8_0 weights, not " + gguf_type)
    root = root.absolute()
    outputs = {f: root / (f"{name}.{gguf_type}.gguf" if f == "gguf" else f"{name}-{f}")
               for f in formats}
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not force:
        raise ToolchainError(f"{', '.join(existing)} already exist; pass --force to replace")
    started = time.monotonic()
    work = root / f".{name}-work"
    record = {"shape": shape, "seed": seed, "config": config,
              "note": "random weights: the text is gibberish; for speed measurements only"}
    steps = 1 + ("gguf" in formats) + bool(set(IR_FORMATS) & set(formats))
    with tqdm(total=steps, desc=f"make {name}", unit="step") as progress:
        hf_dir = work / "hf"
        if not (hf_dir / "config.json").is_file():
            progress.set_postfix_str("random checkpoint")
            build_checkpoint(config, tokenizer_dir or _builtin_tokenizer(), hf_dir, seed)
        progress.update()
        if "gguf" in formats:
            progress.set_postfix_str("GGUF")
            partial = outputs["gguf"].with_name(f".{outputs['gguf'].name}.partial")
            try:
                write_gguf(hf_dir, partial, gguf_type)
                partial.replace(outputs["gguf"])
            finally:
                partial.unlink(missing_ok=True)
            progress.update()
        ir_formats = [f for f in formats if f in IR_FORMATS]
        if ir_formats:
            progress.set_postfix_str("OpenVINO IR")
            _openvino_variants(hf_dir, work, root, name, ir_formats, force, record,
                               outputs.get("gguf"))
            progress.update()
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    for fmt, path in outputs.items():
        size = directory_size(path) if path.is_dir() else path.stat().st_size
        log.info("%s: %s (%s)", fmt, path, human_size(size))
    log.info("made %s in %.0f s%s", name, time.monotonic() - started,
             f"; intermediate files kept in {work}" if keep_work else "")
    return outputs


def _builtin_tokenizer() -> Path:
    """The built-in model's Hugging Face checkpoint (its corrected tokenizer), made offline."""
    from ovserve.toolchain.download import _hf_checkpoint_for

    with tqdm(total=2, desc="built-in tokenizer", unit="step", leave=False) as progress:
        return _hf_checkpoint_for(BUILTIN_MODELS[DEFAULT_MODEL], progress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_shaped_model.py",
        description="Make a model with a real model's shape and seeded random weights, offline: "
        "OpenVINO int8 and int4 folders ovserve serves, a GGUF for llama.cpp and a folder with "
        "that GGUF's own weights. The tokenizer "
        "is the built-in SmolLM2's cut to the shape's vocabulary. For speed measurements only: "
        "random weights generate gibberish.",
    )
    parser.add_argument("--shape", choices=list(SHAPES), default="tinyllama-1.1b",
                        help="whose config.json to copy (default: tinyllama-1.1b, "
                        "TinyLlama-1.1B-Chat-v1.0)")
    parser.add_argument("--output", type=Path, default=Path("models"),
                        help="where the folders and the GGUF go (default: models/)")
    parser.add_argument("--name", help="name of the outputs (default: <shape>-shaped)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--gguf-type", default="Q4_1",
                        help="GGUF type of the matmul weights (default: Q4_1, as the built-in "
                        "model's GGUF; also Q4_0, Q8_0, F16)")
    parser.add_argument("--config", type=json.loads, default=None,
                        help="JSON object laid over the shape's config.json fields, e.g. "
                        "'{\"num_hidden_layers\": 2}' (a smaller model of the same architecture)")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the random checkpoint and the fp16 export (.<name>-work)")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    return parser


def main(argv: list[str] | None = None) -> int:
    return tool.run(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    outputs = make(args.shape, args.output, args.name, args.seed, formats, args.gguf_type,
                   args.force, config=args.config, keep_work=args.keep_work)
    for fmt, path in outputs.items():
        print(f"{fmt:<5} {path}")
