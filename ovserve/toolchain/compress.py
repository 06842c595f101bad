"""``scripts/compress_model.py``: FP16 / INT8 / INT4 variants of an OpenVINO IR model.

Writes ``<DIR>_FP16``, ``<DIR>_INT8_compressed_weights`` and ``<DIR>_INT4_compressed_weights``
next to ``DIR``, as the seed demo does, with NNCF weight compression on the IR. Tokenizer,
detokenizer and config files are copied along, so every variant serves as is.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain import provenance, tool
from ovserve.toolchain.staging import directory_size, human_size, staged_directory

log = logging.getLogger("compress_model")

MODEL_XML = "openvino_model.xml"
MODEL_BIN = "openvino_model.bin"
SUFFIXES = {"fp16": "FP16", "int8": "INT8_compressed_weights", "int4": "INT4_compressed_weights",
            "gguf": "GGUF_weights"}
#: the default set; "gguf" (a GGUF's own Q4_1/Q8_0 weights, gguf_exact) needs --gguf
FORMATS = ("fp16", "int8", "int4")
INT4_GROUP_SIZES = (128, 64, 32, 16)


@dataclass(frozen=True)
class Variant:
    weight_format: str
    path: Path
    size: int
    seconds: float


def variant_path(model_dir: Path, weight_format: str) -> Path:
    return model_dir.with_name(f"{model_dir.name}_{SUFFIXES[weight_format]}")


def int4_group_size(config: dict[str, Any]) -> int:
    """The largest usual group size dividing every matmul input width of the model."""
    widths = [int(config[k]) for k in ("hidden_size", "intermediate_size") if k in config]
    if not widths:
        raise ToolchainError("config.json has no hidden_size; cannot choose an int4 group size")
    common = math.gcd(*widths)
    for size in INT4_GROUP_SIZES:
        if common % size == 0:
            return size
    raise ToolchainError(f"no int4 group size in {INT4_GROUP_SIZES} divides {widths}")


def weight_precision(model: Any) -> str:
    """fp32, fp16, int8 or int4: the narrowest weight type among the model's constants."""
    kinds = {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant" and math.prod(op.get_output_shape(0)) >= 4096
    }
    for names, label in (({"u4", "i4", "nf4"}, "int4"), ({"u8", "i8"}, "int8"), ({"f16"}, "fp16")):
        if kinds & names:
            return label
    return "fp32"


def compress_variant(model_dir: Path, weight_format: str, force: bool,
                     output: Path | None = None, gguf: Path | None = None) -> Variant:
    """One variant of ``model_dir``, in ``output`` (default: the seed's name next to it);
    ``gguf``: the GGUF of the same model whose weights the "gguf" variant takes."""
    import nncf
    import openvino as ov

    started = time.monotonic()
    output = output or variant_path(model_dir, weight_format)
    config = json.loads((model_dir / "config.json").read_text()) if (
        model_dir / "config.json").is_file() else {}
    model = ov.Core().read_model(model_dir / MODEL_XML)
    with staged_directory(output, force=force) as staging:
        details: dict[str, Any] = {}
        if weight_format == "int8":
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        elif weight_format == "int4":
            group = int4_group_size(config)
            details = {"group_size": group, "ratio": 1.0}
            log.info("int4: group size %d (divides %s)", group, {
                k: config[k] for k in ("hidden_size", "intermediate_size") if k in config})
            model = nncf.compress_weights(
                model, mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=group, ratio=1.0
            )
        elif weight_format == "gguf":
            from ovserve.toolchain.gguf_exact import GROUP, read_gguf, replace_weights

            if gguf is None:
                raise ToolchainError("the gguf variant needs the model's GGUF file (--gguf)")
            tensors, _ = read_gguf(gguf)
            replace_weights(model, tensors)
            details = {"gguf_file": gguf.name, "group_size": GROUP,
                       "gguf_types": sorted({t.kind for t in tensors.values()})}
        ov.save_model(model, staging / MODEL_XML, compress_to_fp16=True)
        for item in model_dir.iterdir():
            if item.name in (MODEL_XML, MODEL_BIN, provenance.FILE_NAME):
                continue
            if item.is_dir():
                shutil.copytree(item, staging / item.name)
            else:
                shutil.copy2(item, staging / item.name)
        source = provenance.read(model_dir)
        provenance.write(
            staging, name=output.name, source=f"compressed:{model_dir}",
            base_source=source.get("source"), weight_format=weight_format, **details,
        )
    return Variant(weight_format, output, directory_size(output), time.monotonic() - started)


def compress(model_dir: Path, formats: list[str], force: bool,
             gguf: Path | None = None) -> list[Variant]:
    """Write each requested variant of ``model_dir``; returns them in order."""
    import openvino as ov

    model_dir = model_dir.absolute()
    if not (model_dir / MODEL_XML).is_file():
        raise ToolchainError(f"{model_dir} has no {MODEL_XML}; is it a prepared model?")
    unknown = [f for f in formats if f not in SUFFIXES]
    if unknown:
        raise ToolchainError(
            f"--formats: unknown format {', '.join(unknown)} (choose from "
            f"{', '.join(SUFFIXES)})"
        )
    if "gguf" in formats and gguf is None:
        raise ToolchainError("--formats gguf takes the weights of the model's GGUF: pass --gguf")
    have = weight_precision(ov.Core().read_model(model_dir / MODEL_XML))
    if have in ("int8", "int4"):
        raise ToolchainError(
            f"{model_dir} already has {have} weights; compressing them again loses quality. "
            "Start from an fp32 or fp16 export, e.g. scripts/download_model.py "
            f"--weight-format fp32 --output {model_dir.name}_fp32"
        )
    existing = [variant_path(model_dir, f) for f in formats if variant_path(model_dir, f).exists()]
    if existing and not force:
        raise ToolchainError(
            f"{', '.join(map(str, existing))} already exist{'s' if len(existing) == 1 else ''}; "
            "pass --force to replace"
        )
    variants = []
    for weight_format in tqdm(formats, desc="compress", unit="variant"):
        variants.append(compress_variant(model_dir, weight_format, force, gguf=gguf))
    return variants


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compress_model.py",
        description="Write FP16, INT8 and INT4 weight-compressed copies of an OpenVINO model "
        "directory next to it (<DIR>_FP16, <DIR>_INT8_compressed_weights, "
        "<DIR>_INT4_compressed_weights).",
    )
    parser.add_argument("--model", type=Path, required=True,
                        help="an fp32 or fp16 OpenVINO model directory")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(SUFFIXES)} (default: "
                        f"{','.join(FORMATS)})")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="for --formats gguf: the GGUF the model was made from; its Q4_1 "
                        "weights are kept as they are (u4, f16 scale and fractional zero point, "
                        "groups of 32) in <DIR>_GGUF_weights")
    parser.add_argument("--force", action="store_true", help="replace existing variants")
    return parser


def main(argv: list[str] | None = None) -> int:
    return tool.run(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    base_size = directory_size(args.model) if args.model.is_dir() else 0
    variants = compress(args.model, formats, args.force, args.gguf)
    print(f"{'source':<8} {human_size(base_size):>10}  {args.model.absolute()}")
    for v in variants:
        print(f"{v.weight_format:<8} {human_size(v.size):>10}  {v.path}  ({v.seconds:.0f} s)")
