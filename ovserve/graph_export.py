"""The graphs ``--task`` writes for a local model folder, as OVMS's graph export does
(src/graph_export/graph_export.cpp at 7e4df0c): the same calculators, fields and defaults, so
a graph written here serves on OVMS and the other way round.

``text_generation``, ``embeddings`` and ``rerank`` are served; ``image_generation``,
``text2speech`` and ``speech2text`` have no node in ovserve yet and are refused by name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve import __version__

log = logging.getLogger("ovserve.graph_export")

TASKS = ("text_generation", "embeddings", "rerank", "image_generation", "text2speech",
         "speech2text")
SERVED_TASKS = ("text_generation", "embeddings", "rerank")
PIPELINE_TYPES = ("LM", "LM_CB", "VLM", "VLM_CB", "AUTO")
POOLING = ("CLS", "LAST", "MEAN")
KV_CACHE_PRECISIONS = ("u8", "")
DISTRIBUTION_POLICIES = ("TENSOR_PARALLEL", "PIPELINE_PARALLEL", "")


class TaskError(ValueError):
    """A task or task option ovserve cannot turn into a graph (the message names it)."""


@dataclass(frozen=True)
class TaskRequest:
    """What a graph is made from: the task, the model folder, ``--target_device`` (None: the
    node's default), OVMS's flat ``--plugin_config`` properties, ``--cache_dir``, and the task
    options given on the command line (``--max_num_seqs`` ... by name; those not given are
    absent)."""

    task: str
    model_path: Path
    device: str | None = None
    plugin_config: Mapping[str, Any] | None = None
    cache_dir: str | None = None
    options: Mapping[str, Any] | None = None
    gguf_filename: str | None = None


def _flag(options: Mapping[str, Any], name: str, default: bool) -> str:
    """A "true"/"false" option as OVMS writes it into the graph."""
    value = options.get(name)
    if value is None:
        return "true" if default else "false"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).lower()
    if text not in ("true", "false"):
        raise TaskError(f"--{name} must be true or false, not {value!r}")
    return text


def _choice(options: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise TaskError(f"--{name} must be one of {', '.join(a for a in allowed if a)}, "
                        f"not {value!r}")
    return str(value)


def plugin_string(request: TaskRequest, extra: Mapping[str, Any]) -> str | None:
    """The graph's plugin_config: the flat ``--plugin_config`` with the task options that are
    OpenVINO properties (``--kv_cache_precision`` ...) and ``--cache_dir`` added; a property
    given both ways is an error, as in OVMS (``--num_streams`` 1, the default, gives way)."""
    config = dict(request.plugin_config or {})
    for key, value in extra.items():
        if key in config:
            if key == "NUM_STREAMS" and value == "1":
                continue
            raise TaskError(f"{key} is given twice: in --plugin_config and by its own flag")
        config[key] = value
    if request.cache_dir:
        if "CACHE_DIR" in config:
            raise TaskError("CACHE_DIR is given twice: in --plugin_config and as --cache_dir")
        config["CACHE_DIR"] = Path(request.cache_dir).as_posix()
    return json.dumps(config, separators=(",", ":")) if config else None


def _header() -> str:
    return f"# File created with: ovserve {__version__}\n# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n"


def _models_path(request: TaskRequest) -> str:
    path = request.model_path.resolve()
    if request.gguf_filename:
        path = path / request.gguf_filename
    return path.as_posix()


def _draft_path(request: TaskRequest, source: str) -> str:
    """OVMS names the draft model's folder after its Hugging Face id ('/' -> '-') inside the
    model folder; a local folder (absolute, or relative to the working directory) is used as
    it is. Nothing is downloaded here."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local.resolve().as_posix()
    folder = source.replace("/", "-")
    if (request.model_path / folder).is_dir():
        return folder
    raise TaskError(f"--draft_source_model {source}: there is no model hub here; put the draft "
                    f"model (OpenVINO IR) in {request.model_path / folder} or give its folder")


def text_generation_graph(request: TaskRequest) -> str:
    """OVMS's createTextGenerationGraphTemplate."""
    options = dict(request.options or {})
    extra: dict[str, Any] = {}
    precision = _choice(options, "kv_cache_precision", KV_CACHE_PRECISIONS)
    if precision:
        extra["KV_CACHE_PRECISION"] = precision
    if options.get("max_prompt_len") is not None:
        extra["MAX_PROMPT_LEN"] = int(options["max_prompt_len"])
    policy = _choice(options, "model_distribution_policy", DISTRIBUTION_POLICIES)
    if policy:
        extra["MODEL_DISTRIBUTION_POLICY"] = policy
    prefix_caching = _flag(options, "enable_prefix_caching", True)
    if prefix_caching == "true" and request.device == "NPU":
        extra["DEVICE_PROPERTIES"] = {"NPU": {"NPUW_LLM_ENABLE_PREFIX_CACHING": True}}
    plugin = plugin_string(request, extra)
    lines = [f"max_num_seqs:{int(options.get('max_num_seqs') or 256)},"]
    if request.device:
        lines.append(f'device: "{request.device}",')
    lines.append(f'models_path: "{_models_path(request)}",')
    if plugin is not None:
        lines.append(f"plugin_config: '{plugin}',")
    lines.append(f"enable_prefix_caching: {prefix_caching},")
    lines.append(f"cache_size: {int(options.get('cache_size') or 0)},")
    pipeline = _choice(options, "pipeline_type", PIPELINE_TYPES)
    if pipeline:
        lines.append(f"pipeline_type: {pipeline},")
    if options.get("max_num_batched_tokens") is not None:
        lines.append(f"max_num_batched_tokens: {int(options['max_num_batched_tokens'])},")
    for name in ("reasoning_parser", "tool_parser"):
        if options.get(name) is not None:
            lines.append(f'{name}: "{options[name]}",')
    if _flag(options, "enable_tool_guided_generation", False) == "true":
        lines.append("enable_tool_guided_generation: true,")
    if options.get("cache_interval_multiplier") is not None:
        lines.append(f"cache_interval_multiplier: {int(options['cache_interval_multiplier'])},")
    if _flag(options, "dynamic_split_fuse", True) != "true":
        lines.append("dynamic_split_fuse: false,")
    if options.get("draft_source_model"):
        lines.append("# Speculative decoding configuration")
        lines.append(f'draft_models_path: "{_draft_path(request, options["draft_source_model"])}",')
    fields = "\n            ".join(lines)
    return _header() + f"""
    input_stream: "HTTP_REQUEST_PAYLOAD:input"
    output_stream: "HTTP_RESPONSE_PAYLOAD:output"
    node: {{
    name: "LLMExecutor"
    calculator: "HttpLLMCalculator"
    input_stream: "LOOPBACK:loopback"
    input_stream: "HTTP_REQUEST_PAYLOAD:input"
    input_side_packet: "LLM_NODE_RESOURCES:llm"
    input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"
    output_stream: "LOOPBACK:loopback"
    output_stream: "HTTP_RESPONSE_PAYLOAD:output"
    input_stream_info: {{
        tag_index: 'LOOPBACK:0',
        back_edge: true
    }}
    node_options: {{
        [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {{
            {fields}
        }}
    }}
    input_stream_handler {{
        input_stream_handler: "SyncSetInputStreamHandler",
        options {{
        [mediapipe.SyncSetInputStreamHandlerOptions.ext] {{
            sync_set {{
            tag_index: "LOOPBACK:0"
            }}
        }}
        }}
    }}
    }}"""


def _payload_graph(request: TaskRequest, lines: list[str], node: str, calculator: str,
                   resources: str, options_type: str) -> str:
    """The one-node REQUEST_PAYLOAD -> RESPONSE_PAYLOAD graph OVMS's embeddings and rerank
    exports write: the task's option ``lines``, then ``target_device`` and ``plugin_config``
    (``--num_streams``, default 1, as NUM_STREAMS)."""
    streams = int((request.options or {}).get("num_streams") or 1)
    plugin = plugin_string(request, {"NUM_STREAMS": str(streams)})
    lines = [f'models_path: "{_models_path(request)}",', *lines]
    if request.device:
        lines.append(f'target_device: "{request.device}",')
    if plugin is not None:
        lines.append(f"plugin_config: '{plugin}',")
    fields = "\n            ".join(lines)
    return _header() + f"""
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {{
    name: "{node}"
    calculator: "{calculator}"
    input_side_packet: "{resources}"
    input_stream: "REQUEST_PAYLOAD:input"
    output_stream: "RESPONSE_PAYLOAD:output"
    node_options: {{
        [type.googleapis.com / mediapipe.{options_type}]: {{
            {fields}
        }}
    }}
}}"""


def embeddings_graph(request: TaskRequest) -> str:
    """OVMS's createEmbeddingsGraphTemplate."""
    options = dict(request.options or {})
    lines = [f"normalize_embeddings: {_flag(options, 'normalize', True)},",
             f"truncate: {_flag(options, 'truncate', False)},"]
    pooling = _choice(options, "pooling", POOLING)
    if pooling:
        lines.append(f"pooling: {pooling},")
    return _payload_graph(request, lines, "EmbeddingsExecutor", "EmbeddingsCalculatorOV",
                          "EMBEDDINGS_NODE_RESOURCES:embeddings_servable",
                          "EmbeddingsCalculatorOVOptions")


def rerank_graph(request: TaskRequest) -> str:
    """OVMS's createRerankGraphTemplate (``--max_allowed_chunks`` default 10000)."""
    given = (request.options or {}).get("max_allowed_chunks")
    chunks = 10000 if given is None else int(given)
    if chunks < 1:
        raise TaskError(f"--max_allowed_chunks must be at least 1, not {chunks}")
    return _payload_graph(request, [f"max_allowed_chunks: {chunks},"], "RerankExecutor",
                          "RerankCalculatorOV", "RERANK_NODE_RESOURCES:rerank_servable",
                          "RerankCalculatorOVOptions")


def export_graph(request: TaskRequest) -> str:
    """The graph text for ``request``; raises ``TaskError`` naming what cannot be done."""
    if request.task not in TASKS:
        raise TaskError(f"--task {request.task!r}: one of {', '.join(TASKS)}")
    if request.task not in SERVED_TASKS:
        raise TaskError(f"--task {request.task}: ovserve has no {request.task} node yet "
                        f"(it serves {' and '.join(SERVED_TASKS)})")
    if not request.model_path.is_dir():
        raise TaskError(f"--model_path {request.model_path}: not a folder")
    if request.task == "text_generation":
        return text_generation_graph(request)
    if request.task == "rerank":
        return rerank_graph(request)
    return embeddings_graph(request)


def infer_task(model_path: Path) -> str | None:
    """The task of a Hugging Face-style model folder, as OVMS guesses it from its metadata
    (modules.json: sentence-transformers; config.json's architectures), or None."""
    if (model_path / "model_index.json").is_file():
        return "image_generation"
    if (model_path / "modules.json").is_file():
        return "embeddings"
    try:
        config = json.loads((model_path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") or [] if isinstance(config, dict) else []
    names = [str(a) for a in architectures]
    if any(a.endswith("ForSequenceClassification") for a in names):
        return "rerank"
    if any(a.endswith(("ForCausalLM", "ForConditionalGeneration", "LMHeadModel"))
           for a in names):
        return "text_generation"
    if any(a.endswith("Model") for a in names):
        return "embeddings"
    return None
