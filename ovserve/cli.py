"""The ``ovserve`` command, with OVMS's command line: every flag of OVMS's docs/parameters.md
(at 7e4df0c) is accepted, and ``OVMS_FLAGS`` says what each does here.

    ovserve --config_path CONFIG --port 9000 --rest_port 8000   serve (gRPC + REST)
    ovserve --model_path DIR --model_name NAME --rest_port 8000  one graph or plain model
    ovserve --model_path DIR --model_name NAME --task text_generation --rest_port 8000
    ovserve --list_models / --add_to_config / --remove_from_config   OVMS's config management
    ovserve check --config_path CONFIG     validate config and graphs, run initialize/finalize

gRPC listens only when ``--port`` is given (and not 0), REST only with ``--rest_port``, as in
OVMS.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ovserve import __version__
from ovserve.config_export import (
    ConfigEditError,
    add_to_config,
    config_file,
    list_models,
    remove_from_config,
)
from ovserve.engine.base import LoraOptions
from ovserve.engine.cpu_properties import ENV_OFF as NO_CPU_TABLE_ENV
from ovserve.engine.devices import EVERY_DEVICE, VIRTUAL, DeviceChoice
from ovserve.errors import GraphConfigError
from ovserve.graph_export import TaskError, TaskRequest, export_graph, infer_task
from ovserve.serving.server_config import (
    GRAPH_FILE,
    GraphEntry,
    ModelEntry,
    ServableEntry,
    load_server_config,
    single_graph_entry,
    single_model_entry,
)
from ovserve.transport.auth import read_key_file
from ovserve.transport.request_ids import RequestIdFilter

if TYPE_CHECKING:
    from ovserve.app import ServerSettings

log = logging.getLogger("ovserve")
_T = TypeVar("_T")

#: OVMS's log levels (its --log_level), TRACE below DEBUG
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
TRACE = 5


# ---- OVMS's flags and what each maps to ---------------------------------------------------

@dataclass(frozen=True)
class OvmsFlag:
    """One OVMS flag. ``value``: how it is read (``text``, ``int``, ``number``; ``switch``:
    ``--x`` or ``--x=false`` as OVMS's booleans; ``bool``: ``true``/``false`` as OVMS's task
    options). ``group``: OVMS's group (a task name for a task option). ``effect``: what it does
    in ovserve. ``ignored``: why it cannot mean anything here; such a flag is accepted with a
    warning naming it. ``own``: ovserve defines it itself (an environment default, an alias)."""

    name: str
    value: str
    group: str
    effect: str
    ignored: str = ""
    own: bool = False


_NO_HUB = "no model hub here: converting needs a download"
_SINGLE = "with --model_path on a plain model, as the config key; written by --add_to_config"
_TG, _EMB, _RR = "text_generation", "embeddings", "rerank"
_IMG, _TTS, _STT = "image_generation", "text2speech", "speech2text"

OVMS_FLAGS: tuple[OvmsFlag, ...] = (
    # model configuration (docs/parameters.md, first table)
    OvmsFlag("model_name", "text", "model", "servable name for --model_path", own=True),
    OvmsFlag("model_path", "text", "model", "a graph folder, a plain model or (with --task) a "
             "model folder to serve without a config", own=True),
    OvmsFlag("shape", "text", "model", _SINGLE),
    OvmsFlag("batch_size", "text", "model", _SINGLE),
    OvmsFlag("layout", "text", "model", _SINGLE + " (a model with it does not load: ovserve "
             "does not transpose inputs)"),
    OvmsFlag("mean", "text", "model", _SINGLE + " (a model with it does not load)"),
    OvmsFlag("scale", "text", "model", _SINGLE + " (a model with it does not load)"),
    OvmsFlag("color_format", "text", "model", _SINGLE + " (a model with it does not load)"),
    OvmsFlag("precision", "text", "model", _SINGLE + " (a model with it does not load)"),
    OvmsFlag("model_version_policy", "text", "model", _SINGLE),
    OvmsFlag("nireq", "int", "model", _SINGLE),
    OvmsFlag("plugin_config", "text", "model", "OpenVINO properties for every engine: OVMS's "
             "flat form applies on every device, ovserve's {\"DEVICE\": {...}} form on that "
             "device", own=True),
    OvmsFlag("target_device", "text", "model", "the device of every engine (= --device)",
             own=True),
    OvmsFlag("metrics_enable", "switch", "model", "OVMS's ovms_* metric families on /metrics "
             "(needs --rest_port); ovserve's own families are there whatever it says"),
    OvmsFlag("metrics_list", "text", "model", "which ovms_* families (with --metrics_enable; "
             "an unknown name is a start-up error, as in OVMS)"),
    OvmsFlag("config_path", "text", "model", "config.json (a folder: its config.json)",
             own=True),
    # server configuration
    OvmsFlag("port", "int", "server", "gRPC port; gRPC is off without it (or with 0)",
             own=True),
    OvmsFlag("rest_port", "int", "server", "REST port; REST is off without it (or with 0)",
             own=True),
    OvmsFlag("grpc_bind_address", "text", "server", "comma-separated addresses or host names "
             "gRPC listens on (default --host, 0.0.0.0)"),
    OvmsFlag("rest_bind_address", "text", "server", "comma-separated addresses or host names "
             "REST listens on (default --host, 0.0.0.0)"),
    OvmsFlag("grpc_workers", "int", "server", "", ignored="one asyncio gRPC server serves "
             "every call"),
    OvmsFlag("rest_workers", "int", "server", "", ignored="REST is one asyncio event loop "
             "(uvicorn) serving every connection at once; more processes would each load the "
             "models"),
    OvmsFlag("file_system_poll_wait_seconds", "int", "server", "how often config.json, its "
             "graphs, their handlers and plain models' version folders are checked for changes "
             "(default 1; 0: never): see Config reload"),
    OvmsFlag("custom_node_resources_cleaner_interval_seconds", "int", "server", "",
             ignored="ovserve has no custom nodes (DAG .so libraries)"),
    OvmsFlag("cpu_extension", "text", "server", "", ignored="custom CPU layer libraries are "
             "not loaded; a model needing one fails to load"),
    OvmsFlag("log_level", "text", "server", "TRACE, DEBUG, INFO, WARNING or ERROR", own=True),
    OvmsFlag("log_path", "text", "server", "the log also goes to this file"),
    OvmsFlag("cache_dir", "text", "server", "OpenVINO's model cache: CACHE_DIR on every "
             "device"),
    OvmsFlag("grpc_channel_arguments", "text", "server", "gRPC server options, e.g. "
             "grpc.max_connection_age_ms=2000,grpc.keepalive_time_ms=10000"),
    OvmsFlag("grpc_max_threads", "int", "server", "", ignored="grpc.aio runs calls on the "
             "event loop, not a thread pool"),
    OvmsFlag("grpc_memory_quota", "int", "server", "", ignored="gRPC's buffer quota is "
             "grpcio's default; --max_request_bytes limits each message"),
    OvmsFlag("help", "switch", "server", "the flags and exit", own=True),
    OvmsFlag("version", "switch", "server", "the version and exit", own=True),
    OvmsFlag("allow_credentials", "switch", "server", "CORS: allow credentials"),
    OvmsFlag("allowed_headers", "text", "server", "CORS: comma-separated headers (default *)"),
    OvmsFlag("allowed_methods", "text", "server", "CORS: comma-separated methods (default *)"),
    OvmsFlag("allowed_origins", "text", "server", "CORS: comma-separated origins (default *; "
             "'' for none)"),
    OvmsFlag("api_key_file", "text", "server", "API keys, one per line (OVMS reads the first "
             "line); without it, $API_KEY"),
    OvmsFlag("allowed_local_media_path", "text", "server", "", ignored="ovserve's LLMs take "
             "text only: no images in requests"),
    OvmsFlag("allowed_media_domains", "text", "server", "", ignored="ovserve's LLMs take text "
             "only: no image URLs in requests"),
    OvmsFlag("verbose_response", "switch", "server", "", ignored="no __verbose object in "
             "responses"),
    # config management mode
    OvmsFlag("model_repository_path", "text", "config management", "the folder --list_models "
             "searches, --add_to_config and --pull take model folders from (default "
             "$OVMS_MODEL_REPOSITORY_PATH)"),
    OvmsFlag("list_models", "switch", "config management", "print the servables under "
             "--model_repository_path and exit"),
    OvmsFlag("add_to_config", "switch", "config management", "add --model_name to "
             "--config_path's model_config_list and exit"),
    OvmsFlag("remove_from_config", "switch", "config management", "remove --model_name from "
             "--config_path and exit"),
    # configure mode
    OvmsFlag("configure", "switch", "configure", "write --task's graph.pbtxt into "
             "--model_path and exit"),
    OvmsFlag("task", "text", "configure", "serve --model_path with the graph OVMS's graph "
             "export writes: text_generation, embeddings or rerank (image_generation, "
             "text2speech, speech2text: refused, no node yet)"),
    # pull mode
    OvmsFlag("pull", "switch", "pull", "with the model already in --model_repository_path: "
             "write its graph.pbtxt and exit; else fails: no model hub here"),
    OvmsFlag("source_model", "text", "pull", "serve --model_repository_path/SOURCE_MODEL if "
             "it is there; else fails: no model hub here"),
    OvmsFlag("overwrite_models", "switch", "pull", "fails: no model hub here to download "
             "again"),
    OvmsFlag("gguf_filename", "text", "pull", "the graph's models_path is this file in the "
             "model folder"),
    OvmsFlag("extra_quantization_params", "text", "pull", "", ignored=_NO_HUB),
    OvmsFlag("weight-format", "text", "pull", "", ignored=_NO_HUB),
    # task options, as OVMS's graph export writes them into the graph
    OvmsFlag("max_num_seqs", "int", _TG, "LLMCalculatorOptions.max_num_seqs (default 256)"),
    OvmsFlag("pipeline_type", "text", _TG, "pipeline_type (VLM, VLM_CB: refused at load)"),
    OvmsFlag("enable_prefix_caching", "bool", _TG, "enable_prefix_caching (default true)"),
    OvmsFlag("max_num_batched_tokens", "int", _TG, "max_num_batched_tokens"),
    OvmsFlag("cache_size", "int", _TG, "cache_size in GB (default 0: dynamic)"),
    OvmsFlag("draft_source_model", "text", _TG, "draft_models_path: a local folder (no "
             "download)"),
    OvmsFlag("dynamic_split_fuse", "bool", _TG, "dynamic_split_fuse (default true)"),
    OvmsFlag("max_prompt_len", "int", _TG, "MAX_PROMPT_LEN in plugin_config (NPU)"),
    OvmsFlag("kv_cache_precision", "text", _TG, "KV_CACHE_PRECISION in plugin_config (u8)"),
    OvmsFlag("model_distribution_policy", "text", _TG, "MODEL_DISTRIBUTION_POLICY in "
             "plugin_config"),
    OvmsFlag("reasoning_parser", "text", _TG, "reasoning_parser"),
    OvmsFlag("tool_parser", "text", _TG, "tool_parser"),
    OvmsFlag("enable_tool_guided_generation", "bool", _TG, "enable_tool_guided_generation"),
    OvmsFlag("cache_interval_multiplier", "int", _TG, "cache_interval_multiplier"),
    OvmsFlag("num_streams", "int", f"{_EMB},{_RR},{_IMG},{_TTS},{_STT}", "NUM_STREAMS in "
             "plugin_config (default 1)"),
    OvmsFlag("normalize", "bool", _EMB, "normalize_embeddings (default true)"),
    OvmsFlag("truncate", "bool", _EMB, "truncate (default false)"),
    OvmsFlag("pooling", "text", _EMB, "pooling: CLS, LAST or MEAN"),
    OvmsFlag("max_allowed_chunks", "int", _RR, "max_allowed_chunks (default 10000)"),
    OvmsFlag("resolution", "text", _IMG, "", ignored="--task image_generation is not served"),
    OvmsFlag("max_resolution", "text", _IMG, "", ignored="--task image_generation is not "
             "served"),
    OvmsFlag("default_resolution", "text", _IMG, "", ignored="--task image_generation is not "
             "served"),
    OvmsFlag("max_num_images_per_prompt", "int", _IMG, "", ignored="--task image_generation "
             "is not served"),
    OvmsFlag("num_images_per_prompt", "int", _IMG, "", ignored="--task image_generation is "
             "not served"),
    OvmsFlag("guidance_scale", "number", _IMG, "", ignored="--task image_generation is not "
             "served"),
    OvmsFlag("default_num_inference_steps", "int", _IMG, "", ignored="--task "
             "image_generation is not served"),
    OvmsFlag("max_num_inference_steps", "int", _IMG, "", ignored="--task image_generation is "
             "not served"),
    OvmsFlag("source_loras", "text", _IMG, "", ignored="--task image_generation is not "
             "served"),
    OvmsFlag("model_type", "text", _TTS, "", ignored="--task text2speech is not served"),
)
FLAGS = {flag.name: flag for flag in OVMS_FLAGS}
#: task options by task (a flag may belong to several)
TASK_OPTIONS = {task: tuple(f.name for f in OVMS_FLAGS if task in f.group.split(","))
                for task in (_TG, _EMB, _RR, _IMG, _TTS, _STT)}
#: the single-model flags --model_path and --add_to_config take
MODEL_FLAGS = ("batch_size", "shape", "layout", "mean", "scale", "color_format", "precision",
               "model_version_policy", "nireq")


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


_READERS: dict[str, dict[str, Any]] = {
    "text": {"type": str},
    "int": {"type": _count},
    "number": {"type": float},
    "switch": {"nargs": "?", "const": True, "type": _bool, "metavar": "BOOL"},
    "bool": {"type": _bool, "metavar": "true|false"},
}


# ---- ovserve's own operations flags (limits, names, ids, traces) ----------------------------

@dataclass(frozen=True)
class OwnFlag:
    """One of ovserve's own flags, with the peer it follows. ``value``: a reader of
    ``_READERS`` (or ``names``: repeatable, several values each). ``env``: an environment
    variable that gives its default."""

    name: str
    value: str
    effect: str
    env: str = ""


OPERATIONS_FLAGS: tuple[OwnFlag, ...] = (
    OwnFlag("max_concurrent_requests", "int", "inference requests in flight across the server "
            "(TGI's --max-concurrent-requests); past it a request is refused at once: 429 with "
            "Retry-After, RESOURCE_EXHAUSTED on gRPC (default: no limit)",
            "OVSERVE_MAX_CONCURRENT_REQUESTS"),
    OwnFlag("max_queued_requests", "int", "requests waiting for an engine slot (SGLang's "
            "--max-queued-requests); while that many wait a new request is refused at once "
            "(default: no limit)", "OVSERVE_MAX_QUEUED_REQUESTS"),
    OwnFlag("served_model_name", "names", "more names for a servable, in every API "
            "(vLLM's --served-model-name): SERVABLE=ALIAS[,ALIAS...], repeatable; with "
            "--model_path, plain names (the first is the servable's name when --model_name is "
            "not given)"),
    OwnFlag("otlp_traces_endpoint", "text", "send OpenTelemetry traces over OTLP/gRPC here, "
            "e.g. http://collector:4317 (vLLM's --otlp-traces-endpoint); the OTEL_* variables "
            "configure the exporter, resource and sampler (default: off)",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    OwnFlag("enable_request_id_headers", "switch", "responses carry the request's "
            "X-Request-Id (the client's, else a new one; vLLM's --enable-request-id-headers); "
            "the id is in the log and the trace whatever this says"),
)
#: readers of ovserve's own flags beside ``_READERS``
_OWN_READERS: dict[str, dict[str, Any]] = {
    "names": {"action": "append", "nargs": "+", "metavar": "NAME"},
}


def add_operations_flags(parser: argparse.ArgumentParser) -> None:
    """``OPERATIONS_FLAGS``, in their own group; each defaults to its environment variable, or
    None."""
    group = parser.add_argument_group("operations (limits, names, request ids, traces)")
    for flag in OPERATIONS_FLAGS:
        reader = dict(_OWN_READERS.get(flag.value) or _READERS[flag.value])
        default: Any = os.environ.get(flag.env) or None if flag.env else None
        if default is not None and "type" in reader:
            try:
                default = reader["type"](default)
            except argparse.ArgumentTypeError as exc:
                raise SystemExit(f"ovserve: ${flag.env}: {exc}") from None
        help_text = flag.effect + (f" [${flag.env}]" if flag.env else "")
        group.add_argument(f"--{flag.name}", dest=flag.name, default=default, help=help_text,
                           **reader)


def _task_groups(flag: OvmsFlag) -> list[str]:
    return [g for g in flag.group.split(",") if g in TASK_OPTIONS]


def add_ovms_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``OVMS_FLAGS`` ovserve does not define itself, in OVMS's groups; each
    defaults to None, so what was given is what is not None."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag in OVMS_FLAGS:
        if flag.own:
            continue
        title = f"OVMS {flag.group} options" if not _task_groups(flag) else \
            f"OVMS --task {flag.group.replace(',', ' / ')} options"
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        group = groups[title]
        help_text = flag.effect or f"accepted and ignored: {flag.ignored}"
        group.add_argument(f"--{flag.name}", dest=flag.name.replace("-", "_"), default=None,
                           help=help_text, **_READERS[flag.value])


def given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name.replace("-", "_"), None) is not None


def warn_unused(args: argparse.Namespace, task: str | None, plain_model: bool = False) -> None:
    """One warning naming each flag given that cannot mean anything here, or not with the
    others given (``task``: the task a graph was made for, None if none was; ``plain_model``:
    a plain model is served from --model_path)."""
    for flag in OVMS_FLAGS:
        if flag.own or not given(args, flag.name):
            continue
        groups = _task_groups(flag)
        if flag.ignored:
            log.warning("--%s is accepted and ignored: %s", flag.name, flag.ignored)
        elif groups and task not in groups:
            log.warning("--%s is ignored: it is an option of --task %s%s", flag.name,
                        " / ".join(groups), f", not {task}" if task else "")
        elif flag.name in MODEL_FLAGS and not (plain_model or args.add_to_config):
            log.warning("--%s is ignored: it applies to a plain model given by --model_path "
                        "(in a config, set it in the model's entry)", flag.name)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


_DEVICE = re.compile(r"(CPU|GPU(\.\d+)?|NPU|" + "|".join(VIRTUAL) + r")(:.*)?", re.IGNORECASE)


def _device_properties(text: str) -> dict[str, dict[str, Any]]:
    """--plugin_config: OpenVINO properties, in either form. OVMS's flat form
    ``{"NUM_STREAMS": "1"}`` applies on every device (key ``EVERY_DEVICE``); ovserve's form
    ``{"GPU": {...}}`` on that device. A key is a device when it names one (CPU, GPU, GPU.1,
    NPU, AUTO, HETERO:...); both forms may be mixed."""
    config = _json_object(text)
    out: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        if _DEVICE.fullmatch(key):
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(
                    f"{key!r} must map to an object of OpenVINO properties (keys are device "
                    "names, e.g. {\"GPU\": {\"INFERENCE_PRECISION_HINT\": \"f16\"}}, or "
                    "properties for every device, e.g. {\"NUM_STREAMS\": \"1\"})")
            out.setdefault(key.upper(), {}).update(value)
        else:
            out.setdefault(EVERY_DEVICE, {})[key] = value
    return out


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """OVMS's flags for what to serve."""
    parser.add_argument("--config_path", type=Path, help="OVMS-style config.json, or the folder "
                        "holding it (default: $OVSERVE_CONFIG_PATH when --model_path is not "
                        "given either)")
    parser.add_argument("--model_path", type=Path,
                        help="a graph folder (graph.pbtxt), a plain model (version folders) or, "
                        "with --task, a model folder to serve without a config")
    parser.add_argument("--model_name", help="servable name for --model_path")
    parser.add_argument("--log_level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                        help="log verbosity: OVMS's levels, TRACE the most (default INFO)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve", allow_abbrev=False,  # OVMS takes whole flag names only
        description="Serve LLMs on OpenVINO from OVMS-style config.json and .pbtxt graphs, "
        "with OVMS's command line. 'ovserve check ...' validates a configuration instead of "
        "serving it.",
    )
    parser.add_argument("--version", action="version", version=f"ovserve {__version__}")
    add_source_args(parser)
    parser.add_argument("--port", type=_count, default=None,
                        help="gRPC port; gRPC is off unless given (0: off), as in OVMS")
    parser.add_argument("--rest_port", type=_count, default=None,
                        help="REST port (KServe v2, OpenAI API, metrics, web page); off unless "
                        "given (0: off), as in OVMS")
    parser.add_argument("--host", default="0.0.0.0",
                        help="address both servers listen on, unless --grpc_bind_address / "
                        "--rest_bind_address say otherwise (default 0.0.0.0)")
    parser.add_argument("--grace_period", type=float, default=30.0,
                        help="seconds in-flight requests get to finish on SIGTERM (default 30)")
    parser.add_argument(
        "--override_generation_config", type=_json_object,
        default=os.environ.get("OVSERVE_OVERRIDE_GENERATION_CONFIG") or "{}",
        help="JSON object laid over every model's generation_config.json, e.g. "
        "'{\"temperature\": 0.8, \"seed\": 1}' (default: $OVSERVE_OVERRIDE_GENERATION_CONFIG); "
        "requests still override it")
    parser.add_argument("--max_request_bytes", type=int, default=64 * 1024 * 1024,
                        help="largest request body / gRPC message (default 64 MiB)")
    parser.add_argument("--header_timeout", type=float, default=30.0,
                        help="seconds an HTTP client gets to send a request's line and headers; "
                        "slower connections are closed (default 30)")
    parser.add_argument("--body_timeout", type=float, default=30.0,
                        help="seconds an HTTP request body may pause between reads (a body "
                        "shorter than its Content-Length, a stalled upload): answered 408 and "
                        "the connection closed (default 30, as nginx's client_body_timeout)")
    add_device_args(parser)
    parser.add_argument(
        "--chat_template", default=None,
        help="every LLM's chat template instead of its own: a Jinja file, or the template "
        "itself (vLLM's --chat-template)")
    parser.add_argument(
        "--trust_request_chat_template", action="store_true",
        help="requests may bring their own chat_template (vLLM's "
        "--trust-request-chat-template); without it such a request is a 400")
    parser.add_argument(
        "--deterministic", action="store_true",
        default=env_flag("OVSERVE_DETERMINISTIC"),
        help="reproducible output: a request's tokens do not depend on what else runs or is "
        "cached (one sequence at a time, whole-prompt prefill, no prefix cache), at a cost in "
        "throughput with several clients; every LLM, as 'deterministic: true' in a graph does "
        "(default: $OVSERVE_DETERMINISTIC)")
    parser.add_argument(
        "--api_key", default=os.environ.get("OVSERVE_API_KEY") or None,
        help="require 'Authorization: Bearer <key>' on every HTTP request and gRPC call but "
        "health, readiness, /metrics, GET /v1/config and the web page's files (default: "
        "$OVSERVE_API_KEY; with --api_key_file or $API_KEY, any of the keys; none: open)")
    add_lora_args(parser)
    add_operations_flags(parser)
    add_ovms_flags(parser)
    return parser


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1, true or yes (any case) is on."""
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def env_plugin_config() -> dict[str, dict[str, Any]]:
    """$OVSERVE_PLUGIN_CONFIG as --plugin_config reads it (for Ray Serve's replicas)."""
    return _from_env("OVSERVE_PLUGIN_CONFIG", _device_properties)


def env_generation_overrides() -> dict[str, Any]:
    """$OVSERVE_OVERRIDE_GENERATION_CONFIG as --override_generation_config reads it."""
    return _from_env("OVSERVE_OVERRIDE_GENERATION_CONFIG", _json_object)


def _from_env(name: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(os.environ.get(name) or "{}")
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"${name}: {exc}") from None


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--device (OVMS's --target_device) and --plugin_config: for serving, and for
    `ovserve check`, which loads the models as the server would."""
    parser.add_argument(
        "--device", "--target_device", dest="device",
        default=os.environ.get("OVSERVE_DEVICE") or None,
        help="run every model here, whatever its graph says: CPU, GPU, GPU.1, NPU, AUTO, "
        "HETERO:GPU,CPU ... (default: $OVSERVE_DEVICE, else each graph's own device)")
    parser.add_argument(
        "--plugin_config", type=_device_properties,
        default=os.environ.get("OVSERVE_PLUGIN_CONFIG") or "{}",
        help="OpenVINO properties laid over the graphs' plugin_config: OVMS's flat form for "
        "every device, e.g. '{\"NUM_STREAMS\": \"1\"}', or per device, e.g. '{\"GPU\": "
        "{\"INFERENCE_PRECISION_HINT\": \"f16\"}, \"CPU\": {\"INFERENCE_NUM_THREADS\": 2}}' "
        "(default: $OVSERVE_PLUGIN_CONFIG)")
    parser.add_argument(
        "--no_cpu_table", action="store_true", default=env_flag(NO_CPU_TABLE_ENV),
        help="build LLM engines on CPU with OpenVINO's default properties, without those "
        "ovserve's CPU table picks for this CPU's family by measurement "
        "(ovserve/engine/cpu_properties.py; e.g. INFERENCE_PRECISION_HINT f32 with AMX); "
        "a key the graph's plugin_config or --plugin_config sets wins over the table either "
        "way, and the log says at each engine's load what the table chose "
        f"(default: ${NO_CPU_TABLE_ENV})")


def _lora_module(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError("expected NAME=PATH")
    return name, Path(path)


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"ovserve: ${name} must be a number, not {value!r}") from None


def add_lora_args(parser: argparse.ArgumentParser) -> None:
    """LoRA adapters with vLLM's and NIM's knobs (their environment variables honoured)."""
    group = parser.add_argument_group("LoRA adapters (every LLM whose graph sets no lora_dir)")
    group.add_argument("--lora_dir", type=Path, action="append",
                       default=[Path(p) for p in os.environ.get("NIM_PEFT_SOURCE", "").split(
                           os.pathsep) if p],
                       help="folder of PEFT adapters, one sub-folder each, named by its model "
                       "id; repeatable (default: $NIM_PEFT_SOURCE)")
    group.add_argument("--lora_modules", type=_lora_module, nargs="+", default=[],
                       metavar="NAME=PATH", help="adapters by name, as vLLM's --lora-modules")
    group.add_argument("--lora_refresh_interval", type=float,
                       default=_env_number("NIM_PEFT_REFRESH_INTERVAL", 0),
                       help="re-scan the folders every N seconds; 0: at start and when a "
                       "request names an unknown adapter (default: $NIM_PEFT_REFRESH_INTERVAL)")
    group.add_argument("--max_loras", type=int,
                       default=int(_env_number("NIM_MAX_GPU_LORAS", 8)),
                       help="adapters batched together (least recently used swapped out "
                       "beyond; default 8 or $NIM_MAX_GPU_LORAS)")
    group.add_argument("--max_cpu_loras", type=int,
                       default=int(_env_number("NIM_MAX_CPU_LORAS", 32)),
                       help="adapters whose weights stay in memory (default 32 or "
                       "$NIM_MAX_CPU_LORAS)")
    group.add_argument("--max_lora_rank", type=int, default=64,
                       help="largest adapter rank accepted (default 64)")
    group.add_argument("--enable_lora", action="store_true",
                       help="serve adapters even with no folder (load them at run time with "
                       "POST /v1/load_lora_adapter)")


def chat_template(parser: argparse.ArgumentParser, value: str | None) -> str | None:
    """--chat_template: a file's text, or the template as given (vLLM's rule)."""
    if value is None:
        return None
    path = Path(value)
    if "{" not in value and "\n" not in value:
        if not path.is_file():
            parser.error(f"--chat_template {value}: no such file (give a Jinja file or the "
                         "template itself)")
        return path.read_text()
    return value


def lora_options(args: argparse.Namespace) -> LoraOptions | None:
    """The server-wide ``LoraOptions`` the flags ask for, or None."""
    if not (args.lora_dir or args.lora_modules or args.enable_lora):
        return None
    for number in ("max_loras", "max_cpu_loras", "max_lora_rank"):
        if getattr(args, number) < 1:
            raise SystemExit(f"ovserve: --{number} must be at least 1")
    return LoraOptions(dirs=tuple(p.resolve() for p in args.lora_dir),
                       modules=tuple((n, p.resolve()) for n, p in args.lora_modules),
                       refresh_seconds=max(0.0, args.lora_refresh_interval),
                       max_loras=args.max_loras, max_cpu_loras=args.max_cpu_loras,
                       max_lora_rank=args.max_lora_rank)


def build_check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve check",
        description="Validate a config and its graphs (and run each handler's initialize), "
        "print every problem, exit non-zero if there is any.")
    add_source_args(parser)
    add_device_args(parser)
    return parser


def configure_logging(parser: argparse.ArgumentParser, level: str, path: str | None) -> None:
    """Logs to stderr at ``level`` (TRACE below DEBUG), and to ``path`` too (--log_path), as
    OVMS logs to stdout and the file."""
    logging.addLevelName(TRACE, "TRACE")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        try:
            handlers.append(logging.FileHandler(path))
        except OSError as exc:
            parser.error(f"--log_path {path}: {exc.strerror or exc}")
    for handler in handlers:  # "[request ID] " while a request is served
        handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=TRACE if level == "TRACE" else level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(request_tag)s%(message)s",
                        force=True)
    if path:
        log.info("logging to %s too (--log_path)", path)


# ---- the modes: config management, configure, pull, serve ----------------------------------

def _check_modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """OVMS's usage errors between modes (src/cli_parser.cpp)."""
    hub = bool(args.pull or args.source_model)
    pairs = [
        (args.list_models and (hub or args.task), "--list_models cannot be used with --pull, "
         "--source_model or --task"),
        (args.add_to_config and (hub or args.task), "--add_to_config cannot be used with "
         "--pull, --source_model or --task"),
        (args.remove_from_config and (hub or args.task), "--remove_from_config cannot be used "
         "with --pull, --source_model or --task"),
        (args.add_to_config and args.list_models, "--list_models cannot be used with "
         "--add_to_config"),
        (args.remove_from_config and args.list_models, "--list_models cannot be used with "
         "--remove_from_config"),
        (args.remove_from_config and args.model_path, "--model_path cannot be used with "
         "--remove_from_config"),
        (args.add_to_config and args.remove_from_config, "--add_to_config cannot be used with "
         "--remove_from_config"),
        (args.task and not (args.model_path or hub or args.list_models or args.add_to_config
                            or args.remove_from_config),
         "--task needs --model_path (a local model folder) or --source_model"),
        (args.configure and not args.model_path, "--configure requires --model_path"),
        (args.configure and hub, "--configure cannot be used with --pull or --source_model"),
        (args.configure and args.model_name, "--model_name cannot be used with --configure"),
    ]
    for wrong, message in pairs:
        if wrong:
            parser.error(message)


def _repository(args: argparse.Namespace) -> Path | None:
    repo = args.model_repository_path or os.environ.get("OVMS_MODEL_REPOSITORY_PATH")
    return Path(repo) if repo else None


def run_config_management(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--list_models, --add_to_config, --remove_from_config: edit or list, then exit."""
    repo = _repository(args)
    if args.list_models:
        if repo is None:
            parser.error("--list_models needs --model_repository_path")
        try:
            names = list_models(repo)
        except ConfigEditError as exc:
            print(f"ovserve: {exc}", file=sys.stderr)
            return 1
        for name in names:
            print(name)
        return 0
    config = args.config_path or (repo / "config.json" if repo else None)
    if config is None:
        parser.error("set --config_path with --add_to_config / --remove_from_config")
    if not args.model_name:
        parser.error("set --model_name with --add_to_config / --remove_from_config")
    path = config_file(config)
    try:
        if args.add_to_config:
            if args.model_path is not None:
                base = str(args.model_path)
            elif repo is not None:
                base = str(repo / args.model_name)
            else:
                parser.error("--add_to_config needs --model_path or --model_repository_path")
            fields = {name: getattr(args, name) for name in MODEL_FLAGS}
            fields["target_device"] = args.device if _on_command_line(
                args, "--target_device", "--device") else None
            fields["plugin_config"] = _flag_text(args, "--plugin_config")
            add_to_config(path, args.model_name, base, fields)
        else:
            remove_from_config(path, args.model_name)
    except ConfigEditError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    print(f"Config updated: {path}")
    return 0


def task_request(parser: argparse.ArgumentParser, args: argparse.Namespace, folder: Path,
                 task: str | None) -> TaskRequest:
    """What the graph for ``folder`` is made from: the task given, else the one its metadata
    says (a usage error when neither tells)."""
    task = task or infer_task(folder)
    if task is None:
        parser.error(f"cannot tell the task of {folder} from its config.json: give --task "
                     "(text_generation, embeddings or rerank)")
    args.graph_task = task  # for warn_unused: the options of other tasks are ignored
    flat = args.plugin_config.get(EVERY_DEVICE)
    options = {name: getattr(args, name) for name in TASK_OPTIONS.get(task, ())
               if given(args, name)}
    return TaskRequest(task=task, model_path=folder, device=args.device, plugin_config=flat,
                       cache_dir=getattr(args, "cache_dir", None), options=options,
                       gguf_filename=getattr(args, "gguf_filename", None))


def write_graph(request: TaskRequest, folder: Path) -> Path:
    """``request``'s graph as ``folder``/graph.pbtxt (raises ``TaskError``)."""
    text = export_graph(request)
    path = folder / GRAPH_FILE
    path.write_text(text + "\n")
    log.info("wrote %s (--task %s on %s)", path, request.task, request.model_path)
    return path


def _in_memory_folder() -> Path:
    """A private folder for graphs made at start (OVMS keeps them in memory), removed at
    exit."""
    folder = Path(tempfile.mkdtemp(prefix="ovserve-task-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def hub_folder(args: argparse.Namespace) -> tuple[Path, str]:
    """--pull / --source_model: the model's folder (--model_path, else
    --model_repository_path/SOURCE_MODEL) and its servable name; a ``TaskError`` when it is
    not there (nothing is downloaded)."""
    source = args.source_model or args.model_name
    if not source:
        raise TaskError("--pull needs --source_model (or --model_name)")
    folder = args.model_path or (_repository(args) or Path()) / source
    name = args.model_name or source
    if args.overwrite_models or not folder.is_dir():
        why = "cannot download it again (--overwrite_models)" if folder.is_dir() else \
            f"{folder} is not there"
        raise TaskError(
            f"there is no model hub here: --pull / --source_model would download {source} from "
            f"Hugging Face, and {why}. Put the model (OpenVINO IR with its tokenizer, e.g. "
            f"from `optimum-cli export openvino --model {source} {folder}`) in {folder} and "
            "run again")
    return folder, name


def entries_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[
    list[ServableEntry], str
]:
    """What to serve, and where it was read from. Raises ``GraphConfigError`` / ``TaskError``
    for a config or a task that cannot be served."""
    task = getattr(args, "task", None)
    if args.config_path and args.model_path:
        parser.error("give either --config_path or --model_path, not both")
    if args.config_path:
        path = config_file(args.config_path)
        return load_server_config(path), str(path)
    if args.model_path:
        if not args.model_name:  # vLLM's habit: the first served name names it
            args.model_name = next(iter(_plain_names(args)), None)
        if not args.model_name:
            parser.error("--model_path needs --model_name (or --served_model_name NAME)")
        return [single_entry(parser, args, args.model_path, args.model_name, task)], \
            str(args.model_path)
    default = os.environ.get("OVSERVE_CONFIG_PATH")
    if default:  # the image's own servables unless told otherwise
        return load_server_config(Path(default)), default
    parser.error("nothing to serve: give --config_path CONFIG or --model_path DIR "
                 "(or set OVSERVE_CONFIG_PATH)")


def _plain_model(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(
        p.is_dir() and p.name.isdigit() for p in path.iterdir()))


def single_entry(parser: argparse.ArgumentParser, args: argparse.Namespace, path: Path,
                 name: str, task: str | None) -> ServableEntry:
    """--model_path: with --task (or a model folder with no graph.pbtxt) the graph OVMS's
    graph export makes, kept out of the folder as OVMS keeps it in memory; a folder with a
    graph.pbtxt: that graph; version folders or a model file: a plain model with the
    single-model flags."""
    hf_model = (path / "config.json").is_file() or (path / "model_index.json").is_file()
    if task is not None or (path.is_dir() and hf_model and not (path / GRAPH_FILE).is_file()):
        request = task_request(parser, args, path, task)
        graph = write_graph(request, _in_memory_folder())
        log.info("servable %s: the --task %s graph for %s", name, request.task, path)
        return GraphEntry(name=name, base_path=path.resolve(), graph_path=graph)
    if not (path / GRAPH_FILE).is_file() and _plain_model(path):
        options = {k: getattr(args, k) for k in MODEL_FLAGS if given(args, k)}
        return single_model_entry(path, name, options)
    return single_graph_entry(path, name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        parser = build_check_parser()
        args = parser.parse_args(argv[1:])
        configure_logging(parser, args.log_level, None)
        try:
            checked, source = entries_from_args(parser, args)
        except (GraphConfigError, TaskError) as exc:
            print(f"ovserve: {exc}", file=sys.stderr)
            return 1
        from ovserve.check import run_check

        return run_check(checked, source, DeviceChoice(args.device, args.plugin_config),
                         cpu_table=not args.no_cpu_table)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line, args.graph_task = list(argv), None
    configure_logging(parser, args.log_level, args.log_path)
    _check_modes(parser, args)
    if args.list_models or args.add_to_config or args.remove_from_config:
        warn_unused(args, None)
        return run_config_management(parser, args)
    try:
        if args.configure:
            write_graph(task_request(parser, args, args.model_path, args.task),
                        args.model_path)
            warn_unused(args, args.graph_task)
            print(f"ovserve: wrote {args.model_path / GRAPH_FILE}")
            return 0
        if args.pull or args.source_model:
            folder, name = hub_folder(args)
            path = write_graph(task_request(parser, args, folder, args.task), folder)
            if args.pull:
                warn_unused(args, args.graph_task)
                print(f"ovserve: {folder} is already there (nothing downloaded); wrote {path}")
                return 0
            entries: list[ServableEntry] = [single_graph_entry(folder, name)]
        else:
            entries, _ = entries_from_args(parser, args)
    except (GraphConfigError, TaskError) as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    warn_unused(args, args.graph_task, any(isinstance(e, ModelEntry) for e in entries))
    return run_server(server_settings(parser, args, entries))


def _on_command_line(args: argparse.Namespace, *flags: str) -> bool:
    """Whether one of ``flags`` was given on the command line (not by an environment
    default)."""
    line: list[str] = getattr(args, "command_line", [])
    return any(a == f or a.startswith(f + "=") for a in line for f in flags)


def _flag_text(args: argparse.Namespace, flag: str) -> str | None:
    """A flag's text as given on the command line (--add_to_config writes it as OVMS does)."""
    line: list[str] = getattr(args, "command_line", [])
    for i, arg in enumerate(line):
        if arg == flag and i + 1 < len(line):
            return line[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _bind_addresses(parser: argparse.ArgumentParser, flag: str, text: str | None
                    ) -> tuple[str, ...]:
    if text is None:
        return ()
    hosts = tuple(h.strip() for h in text.split(",") if h.strip())
    if not hosts:
        parser.error(f"--{flag}: expected a comma-separated list of addresses or host names")
    return hosts


def _channel_arguments(parser: argparse.ArgumentParser, text: str | None
                       ) -> tuple[tuple[str, int | str], ...]:
    """--grpc_channel_arguments "grpc.max_connection_age_ms=2000,...": numbers as integers."""
    out: list[tuple[str, int | str]] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--grpc_channel_arguments: {item.strip()!r} is not NAME=VALUE")
        value = value.strip()
        out.append((key.strip(), int(value) if re.fullmatch(r"-?\d+", value) else value))
    return tuple(out)


def api_keys(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    """Every key a request may carry: --api_key (or $OVSERVE_API_KEY), and OVMS's: the lines
    of --api_key_file, or else $API_KEY. The log says where they came from, never what they
    are."""
    keys: list[str] = []
    sources: list[str] = []
    if args.api_key:
        keys.append(args.api_key)
        sources.append("--api_key" if _on_command_line(args, "--api_key") else
                       "$OVSERVE_API_KEY")
    if args.api_key_file:
        try:
            from_file = read_key_file(Path(args.api_key_file))
        except ValueError as exc:
            parser.error(f"--api_key_file: {exc}")
        keys += from_file
        sources.append(f"{len(from_file)} from --api_key_file {args.api_key_file}")
    elif os.environ.get("API_KEY"):
        keys.append(os.environ["API_KEY"])
        sources.append("$API_KEY")
    if keys:
        log.info("API keys required (%s)", ", ".join(sources))
    return tuple(dict.fromkeys(keys))


def server_settings(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    entries: list[ServableEntry]) -> ServerSettings:
    """The ``ServerSettings`` the command line asks for (usage errors exit 2)."""
    from ovserve.app import ServerSettings
    from ovserve.transport.rest.app import Cors

    grpc_port = args.port or None  # 0: off, as in OVMS
    rest_port = args.rest_port or None
    if grpc_port is None and rest_port is None:
        parser.error("nothing to listen on: give --port (gRPC) and/or --rest_port (REST)")
    for flag, server, port in (("grpc_bind_address", "gRPC", grpc_port),
                               ("grpc_channel_arguments", "gRPC", grpc_port),
                               ("rest_bind_address", "REST", rest_port)):
        if given(args, flag) and port is None:
            log.warning("--%s is ignored: %s is off (no %s)", flag, server,
                        "--port" if server == "gRPC" else "--rest_port")
    plugin_config = dict(args.plugin_config)
    if args.cache_dir:
        plugin_config[EVERY_DEVICE] = {"CACHE_DIR": args.cache_dir,
                                       **plugin_config.get(EVERY_DEVICE, {})}
    cors = Cors(origins=Cors.split("*" if args.allowed_origins is None else
                                   args.allowed_origins),
                methods=Cors.split(args.allowed_methods or "*"),
                headers=Cors.split(args.allowed_headers or "*"),
                credentials=bool(args.allow_credentials))
    poll = args.file_system_poll_wait_seconds
    return ServerSettings(
        entries=entries, host=args.host, grpc_port=grpc_port, rest_port=rest_port,
        grpc_hosts=_bind_addresses(parser, "grpc_bind_address", args.grpc_bind_address),
        rest_hosts=_bind_addresses(parser, "rest_bind_address", args.rest_bind_address),
        grpc_options=_channel_arguments(parser, args.grpc_channel_arguments),
        grace_seconds=args.grace_period, max_body_bytes=args.max_request_bytes,
        generation_overrides=args.override_generation_config, lora=lora_options(args),
        devices=DeviceChoice(args.device, plugin_config), api_keys=api_keys(parser, args),
        cors=cors, header_timeout=args.header_timeout, body_timeout=args.body_timeout,
        deterministic=args.deterministic, config_poll_seconds=1.0 if poll is None else poll,
        cpu_table=not args.no_cpu_table,
        chat_template=chat_template(parser, args.chat_template),
        trust_request_chat_template=args.trust_request_chat_template,
        metrics_enable=bool(args.metrics_enable),
        metrics_list=Cors.split(args.metrics_list or ""),
        config_path=config_file(args.config_path) if args.config_path else None,
        max_concurrent_requests=_limit(parser, args, "max_concurrent_requests"),
        max_queued_requests=_limit(parser, args, "max_queued_requests"),
        served_model_names=served_names(parser, args, entries),
        request_id_headers=bool(args.enable_request_id_headers),
        otlp_traces_endpoint=args.otlp_traces_endpoint or None,
    )


def _plain_names(args: argparse.Namespace) -> list[str]:
    """--served_model_name's plain names (vLLM's list, with --model_path)."""
    return [n for group in (getattr(args, "served_model_name", None) or []) for n in group
            if "=" not in n]


def served_names(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 entries: Sequence[ServableEntry]) -> dict[str, tuple[str, ...]]:
    """--served_model_name as servable -> aliases. A usage error for a servable that is not
    served, an alias that is another servable's name or given to two servables, plain names
    without --model_path."""
    aliases: dict[str, list[str]] = {}
    for group in getattr(args, "served_model_name", None) or []:
        for item in group:
            if "=" not in item:
                continue
            servable, _, text = item.partition("=")
            listed = [a.strip() for a in text.split(",") if a.strip()]
            if not servable.strip() or not listed:
                parser.error(f"--served_model_name {item}: expected SERVABLE=ALIAS[,ALIAS...]")
            aliases.setdefault(servable.strip(), []).extend(listed)
    plain = _plain_names(args)
    if plain:
        if not args.model_path:
            parser.error("--served_model_name: plain names go with --model_path; with a config "
                         "give SERVABLE=ALIAS[,ALIAS...]")
        aliases.setdefault(args.model_name, []).extend(n for n in plain if n != args.model_name)
    served = {e.name for e in entries}
    owner: dict[str, str] = {}
    for servable, listed in aliases.items():
        if served and servable not in served:
            parser.error(f"--served_model_name {servable}=...: no servable is named {servable!r} "
                         f"(servables: {', '.join(sorted(served))})")
        for alias in listed:
            if alias in served:
                parser.error(f"--served_model_name: {alias!r} is already a servable's name")
            if owner.setdefault(alias, servable) != servable:
                parser.error(f"--served_model_name: {alias!r} is given to {owner[alias]} and "
                             f"{servable}")
    return {s: tuple(dict.fromkeys(a for a in listed if a != s))
            for s, listed in aliases.items() if listed}


def _limit(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> int | None:
    value: int | None = getattr(args, name)
    if value is not None and value < 1:
        parser.error(f"--{name} must be at least 1 (leave it out for no limit)")
    return value


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (as uvicorn and vLLM use it): it spends less
    CPU per streamed chunk, and that CPU is taken from the engine on a small machine."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_server(settings: ServerSettings) -> int:
    from ovserve.app import StartupError, serve

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(settings))
    except StartupError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    return 0
