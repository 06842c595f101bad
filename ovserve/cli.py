"""The ``ovserve`` command, with OVMS's flag names.

    ovserve --config_path CONFIG --port 9000 --rest_port 8000   serve (gRPC + REST)
    ovserve --model_path DIR --model_name NAME --port 9000       serve one graph, no config
    ovserve check --config_path CONFIG     validate config and graphs, run initialize/finalize
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ovserve import __version__
from ovserve.errors import GraphConfigError
from ovserve.serving.server_config import GraphEntry, load_server_config, single_graph_entry


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """OVMS's flags for what to serve."""
    parser.add_argument("--config_path", type=Path, help="OVMS-style config.json")
    parser.add_argument("--model_path", type=Path,
                        help="a graph directory (graph.pbtxt) to serve without a config")
    parser.add_argument("--model_name", help="servable name for --model_path")
    parser.add_argument("--log_level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")


def entries_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[
    list[GraphEntry], str
]:
    if args.config_path and args.model_path:
        parser.error("give either --config_path or --model_path, not both")
    if args.config_path:
        return load_server_config(args.config_path), str(args.config_path)
    if args.model_path:
        if not args.model_name:
            parser.error("--model_path needs --model_name")
        return [single_graph_entry(args.model_path, args.model_name)], str(args.model_path)
    parser.error("nothing to serve: give --config_path CONFIG or --model_path DIR")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


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
        default=os.environ.get("OVSERVE_OVERRIDE_GENERATION_CONFIG", "{}"),
        help="JSON object laid over every model's generation_config.json, e.g. "
        "'{\"temperature\": 0.8, \"seed\": 1}' (default: $OVSERVE_OVERRIDE_GENERATION_CONFIG); "
        "requests still override it")
    parser.add_argument("--max_request_bytes", type=int, default=64 * 1024 * 1024,
                        help="largest request body / gRPC message (default 64 MiB)")
    return parser


def build_check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovserve check",
        description="Validate a config and its graphs (and run each handler's initialize), "
        "print every problem, exit non-zero if there is any.")
    add_source_args(parser)
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

        return run_check(entries, source)
    return run_server(args, entries)


def run_server(args: argparse.Namespace, entries: list[GraphEntry]) -> int:
    import asyncio

    from ovserve.app import ServerSettings, StartupError, serve

    settings = ServerSettings(
        entries=entries, host=args.host, grpc_port=args.port, rest_port=args.rest_port,
        grace_seconds=args.grace_period, max_body_bytes=args.max_request_bytes,
        generation_overrides=args.override_generation_config,
    )
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        print(f"ovserve: {exc}", file=sys.stderr)
        return 1
    return 0
