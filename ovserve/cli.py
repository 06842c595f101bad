"""The ``ovserve`` command, with OVMS's flag names.

    ovserve --config_path CONFIG --port 9000 --rest_port 8000   serve (gRPC + REST)
    ovserve --model_path DIR --model_name NAME --port 9000       serve one graph, no config
    ovserve check --config_path CONFIG     validate config and graphs, run initialize/finalize
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovserve import __version__
from ovserve.engine.base import LoraOptions
from ovserve.engine.devices import DeviceChoice
from ovserve.errors import GraphConfigError
from ovserve.serving.server_config import (
    ServableEntry,
    load_server_config,
    single_graph_entry,
)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """OVMS's flags for what to serve."""
    parser.add_argument("--config_path", type=Path, help="OVMS-style config.json (default: "
                        "$OVSERVE_CONFIG_PATH when --model_path is not given either)")
    parser.add_argument("--model_path", type=Path,
                        help="a graph directory (graph.pbtxt) to serve without a config")
    parser.add_argument("--model_name", help="servable name for --model_path")
    parser.add_argument("--log_level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")


def entries_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[
    list[ServableEntry], str
]:
    if args.config_path and args.model_path:
        parser.error("give either --config_path or --model_path, not both")
    if args.config_path:
        return load_server_config(args.config_path), str(args.config_path)
    if args.model_path:
        if not args.model_name:
            parser.error("--model_path needs --model_name")
        return [single_graph_entry(args.model_path, args.model_name)], str(args.model_path)
    default = os.environ.get("OVSERVE_CONFIG_PATH")
    if default:  # the image's own servables unless told otherwise
        return load_server_config(Path(default)), default
    parser.error("nothing to serve: give --config_path CONFIG or --model_path DIR "
                 "(or set OVSERVE_CONFIG_PATH)")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _device_properties(text: str) -> dict[str, dict[str, Any]]:
    """--plugin_config: a JSON object of device name -> OpenVINO properties."""
    config = _json_object(text)
    bad = [k for k, v in config.items() if not isinstance(v, dict)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"{bad[0]!r} must map to an object of OpenVINO properties (keys are device names, "
            "e.g. {\"GPU\": {\"INFERENCE_PRECISION_HINT\": \"f16\"}})")
    return {k.upper(): v for k, v in config.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve",
        description="Serve LLMs on OpenVINO from OVMS-style config.json and .pbtxt graphs. "
        "'ovserve check ...' validates a configuration instead of serving it.",
    )
    parser.add_argument("--version", action="version", version=f"ovserve {__version__}")
    add_source_args(parser)
    parser.add_argument("--port", type=int, default=9000, help="gRPC port (default 9000)")
    parser.add_argument("--rest_port", type=int, default=None,
                        help="REST port (KServe v2, metrics); off unless given, as in OVMS")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
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
        "--deterministic", action="store_true",
        default=env_flag("OVSERVE_DETERMINISTIC"),
        help="reproducible output: a request's tokens do not depend on what else runs or is "
        "cached (one sequence at a time, whole-prompt prefill, no prefix cache), at a cost in "
        "throughput with several clients; every LLM, as 'deterministic: true' in a graph does "
        "(default: $OVSERVE_DETERMINISTIC)")
    parser.add_argument(
        "--api_key", default=os.environ.get("OVSERVE_API_KEY") or None,
        help="require 'Authorization: Bearer <key>' on every HTTP request and gRPC call but "
        "health, readiness and /metrics (default: $OVSERVE_API_KEY; none: open)")
    add_lora_args(parser)
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


def _from_env(name: str, parse: Any) -> Any:
    try:
        return parse(os.environ.get(name) or "{}")
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"${name}: {exc}") from None


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--device and --plugin_config: for serving, and for `ovserve check`, which loads the
    models as the server would."""
    parser.add_argument(
        "--device", default=os.environ.get("OVSERVE_DEVICE") or None,
        help="run every model here, whatever its graph says: CPU, GPU, GPU.1, NPU, AUTO, "
        "HETERO:GPU,CPU ... (default: $OVSERVE_DEVICE, else each graph's own device)")
    parser.add_argument(
        "--plugin_config", type=_device_properties,
        default=os.environ.get("OVSERVE_PLUGIN_CONFIG") or "{}",
        help="OpenVINO properties per device, laid over the graphs' plugin_config for engines "
        "on that device, e.g. '{\"GPU\": {\"INFERENCE_PRECISION_HINT\": \"f16\"}, \"CPU\": "
        "{\"INFERENCE_NUM_THREADS\": 2}}' (default: $OVSERVE_PLUGIN_CONFIG)")


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        parser = build_check_parser()
        args = parser.parse_args(argv[1:])
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    try:
        entries, source = entries_from_args(parser, args)
    except GraphConfigError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    if argv[:1] == ["check"]:
        from ovserve.check import run_check

        return run_check(entries, source, DeviceChoice(args.device, args.plugin_config))
    return run_server(args, entries)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (as uvicorn and vLLM use it): it spends less
    CPU per streamed chunk, and that CPU is taken from the engine on a small machine."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_server(args: argparse.Namespace, entries: list[ServableEntry]) -> int:
    from ovserve.app import ServerSettings, StartupError, serve

    settings = ServerSettings(
        entries=entries, host=args.host, grpc_port=args.port, rest_port=args.rest_port,
        grace_seconds=args.grace_period, max_body_bytes=args.max_request_bytes,
        generation_overrides=args.override_generation_config, lora=lora_options(args),
        devices=DeviceChoice(args.device, args.plugin_config), api_key=args.api_key,
        header_timeout=args.header_timeout, body_timeout=args.body_timeout,
        deterministic=args.deterministic,
    )
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(settings))
    except StartupError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    return 0
