"""OVMS's command line (issue 27): every flag of OVMS's docs/parameters.md (at 7e4df0c) on a
real ``ovserve`` command line; the server starts (or the command exits 0), a flag that means
nothing here gives one warning naming it, and the flags that mean something do it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ovserve import cli
from ovserve.app import ServerSettings
from ovserve.transport.rest.app import Cors
from tests.conftest import REPO
from tests.ovms_server import launch
from tests.transport.server import free_port, start_server, write_config

#: every option named in docs/parameters.md's tables (https_proxy and the upper-case names are
#: environment variables), in its order
PARAMETERS_MD = (
    "model_name", "model_path", "shape", "batch_size", "layout", "mean", "scale",
    "color_format", "precision", "model_version_policy", "plugin_config", "nireq",
    "target_device", "metrics_enable", "metrics_list", "config_path", "port", "rest_port",
    "grpc_bind_address", "rest_bind_address", "grpc_workers", "rest_workers",
    "file_system_poll_wait_seconds", "custom_node_resources_cleaner_interval_seconds",
    "cpu_extension", "log_level", "log_path", "cache_dir", "grpc_channel_arguments",
    "grpc_max_threads", "grpc_memory_quota", "help", "version", "allow_credentials",
    "allowed_headers", "allowed_methods", "allowed_origins", "api_key_file",
    "allowed_local_media_path", "allowed_media_domains", "verbose_response",
    "model_repository_path", "list_models", "add_to_config", "remove_from_config",
    "configure", "task", "pull", "source_model", "overwrite_models", "gguf_filename",
    "extra_quantization_params", "weight-format", "max_num_seqs", "pipeline_type",
    "enable_prefix_caching", "max_num_batched_tokens", "cache_size", "draft_source_model",
    "dynamic_split_fuse", "max_prompt_len", "kv_cache_precision", "model_distribution_policy",
    "reasoning_parser", "tool_parser", "enable_tool_guided_generation",
    "cache_interval_multiplier", "resolution", "max_resolution", "default_resolution",
    "max_num_images_per_prompt", "num_images_per_prompt", "guidance_scale",
    "default_num_inference_steps", "max_num_inference_steps", "num_streams", "source_loras",
    "normalize", "truncate", "pooling", "max_allowed_chunks", "model_type",
)

#: each flag as a serving command line gives it (beside --config_path, --port, --rest_port):
#: the server must start; the flags whose meaning needs more are checked below
SERVE_WITH: dict[str, list[str]] = {
    "shape": ["(1,3,224,224)"], "batch_size": ["1"], "layout": ["NCHW"], "mean": ["[1,2,3]"],
    "scale": ["255"], "color_format": ["BGR:RGB"], "precision": ["fp16:fp32"],
    "model_version_policy": ['{"latest": {"num_versions": 1}}'], "nireq": ["2"],
    "plugin_config": ['{"NUM_STREAMS": "1"}'], "target_device": ["CPU"], "metrics_enable": [],
    "metrics_list": ["ovms_requests_success", "--metrics_enable"],
    "grpc_bind_address": ["127.0.0.1"], "rest_bind_address": ["127.0.0.1"],
    "grpc_workers": ["2"], "rest_workers": ["4"], "file_system_poll_wait_seconds": ["0"],
    "custom_node_resources_cleaner_interval_seconds": ["1"], "cpu_extension": ["/no/lib.so"],
    "log_level": ["TRACE"], "cache_dir": ["{tmp}/cache"],
    "grpc_channel_arguments": ["grpc.max_connection_age_ms=2000"],
    "grpc_max_threads": ["4"], "grpc_memory_quota": ["2147483648"], "allow_credentials": [],
    "allowed_headers": ["content-type"], "allowed_methods": ["GET,POST"],
    "allowed_origins": ["http://a.example"], "allowed_local_media_path": ["{tmp}"],
    "allowed_media_domains": ["all"], "verbose_response": [],
    "model_repository_path": ["{tmp}"], "gguf_filename": ["model.gguf"],
    "extra_quantization_params": ["--sym --ratio 1.0"], "weight-format": ["int4"],
    "max_num_seqs": ["8"],
    "pipeline_type": ["LM_CB"], "enable_prefix_caching": ["false"],
    "max_num_batched_tokens": ["256"], "cache_size": ["1"], "draft_source_model": ["d"],
    "dynamic_split_fuse": ["false"], "max_prompt_len": ["512"], "kv_cache_precision": ["u8"],
    "model_distribution_policy": ["TENSOR_PARALLEL"], "reasoning_parser": ["qwen3"],
    "tool_parser": ["hermes3"], "enable_tool_guided_generation": ["true"],
    "cache_interval_multiplier": ["2"], "resolution": ["512x512"],
    "max_resolution": ["1024x1024"], "default_resolution": ["512x512"],
    "max_num_images_per_prompt": ["1"], "num_images_per_prompt": ["1"],
    "guidance_scale": ["7.5"], "default_num_inference_steps": ["20"],
    "max_num_inference_steps": ["50"], "num_streams": ["2"], "source_loras": ["a=b/c"],
    "normalize": ["true"], "truncate": ["false"], "pooling": ["MEAN"],
    "max_allowed_chunks": ["100"], "model_type": ["kokoro"],
}
#: flags checked by their own tests (modes, the command line start_server builds itself)
OWN_TESTS = {"model_name", "model_path", "config_path", "port", "rest_port", "log_path",
             "help", "version", "api_key_file", "list_models", "add_to_config",
             "remove_from_config", "configure", "task", "pull", "source_model",
             "overwrite_models"}


def test_every_flag_of_parameters_md_is_in_the_table_the_parser_and_the_readme() -> None:
    parser = cli.build_parser()
    options = set(parser._option_string_actions)
    readme = (REPO / "README.md").read_text()
    for name in PARAMETERS_MD:
        assert name in cli.FLAGS, name
        assert f"--{name}" in options, name
        assert f"`--{name}`" in readme, f"--{name} is not in the README's table"
        assert name in SERVE_WITH or name in OWN_TESTS, name
    assert set(cli.FLAGS) == set(PARAMETERS_MD)  # and nothing the document does not name


def test_the_table_says_what_each_flag_does() -> None:
    for flag in cli.OVMS_FLAGS:
        assert bool(flag.effect) != bool(flag.ignored), flag.name  # one or the other
        assert flag.value in ("text", "int", "number", "switch", "bool"), flag.name


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("graphs"))


def warnings_naming(log: str, flag: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line and f"--{flag} " in line]


@pytest.mark.parametrize("flag", sorted(SERVE_WITH))
def test_the_server_starts_with_each_flag(flag: str, config: Path, tmp_path: Path) -> None:
    values = [v.replace("{tmp}", str(tmp_path)) for v in SERVE_WITH[flag]]
    server = start_server(config, f"--{flag}", *values)
    try:
        reply = httpx.post(f"{server.rest_url}/v2/models/echo/infer", json={"inputs": [
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]})
        assert reply.status_code == 200
    finally:
        assert server.terminate() == 0
    warned = warnings_naming(server.log, flag)
    meaning = cli.FLAGS[flag]
    if meaning.ignored or any(g in cli.TASK_OPTIONS for g in meaning.group.split(",")) or \
            flag in cli.MODEL_FLAGS:
        assert len(warned) == 1, server.log  # one warning, naming it
    else:
        assert warned == [], server.log
    assert "Traceback" not in server.log


def test_help_and_version_exit_0() -> None:
    for flag, text in (("--help", "--grpc_bind_address"), ("--version", "ovserve ")):
        result = subprocess.run([sys.executable, "-m", "ovserve", flag], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0 and text in result.stdout


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def test_grpc_is_off_without_port(config: Path) -> None:
    """As OVMS: no --port, no gRPC server; REST serves."""
    server = launch("--config_path", str(config), "--host", "127.0.0.1",
                    "--grpc_bind_address", "127.0.0.1")
    try:
        assert httpx.get(f"{server.rest_url}/v2/models/echo/ready").status_code == 200
    finally:
        assert server.terminate() == 0
    assert "gRPC off (no --port)" in server.log and "gRPC :" not in server.log
    assert len(warnings_naming(server.log, "grpc_bind_address")) == 1


def test_port_0_is_off_and_no_port_at_all_is_a_usage_error(config: Path) -> None:
    server = launch("--config_path", str(config), "--host", "127.0.0.1", "--port", "0")
    assert server.terminate() == 0 and "gRPC off" in server.log
    result = subprocess.run([sys.executable, "-m", "ovserve", "--config_path", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "nothing to listen on: give --port (gRPC) and/or --rest_port (REST)" in result.stderr


def test_bind_addresses(config: Path) -> None:
    """--rest_bind_address / --grpc_bind_address: each server listens there only (127.0.0.2
    is loopback too on Linux); --host stays the default of both."""
    grpc_port, rest_port = free_port(), free_port()
    server = launch("--config_path", str(config), "--port", str(grpc_port),
                    "--grpc_bind_address", "127.0.0.2", "--rest_bind_address",
                    "127.0.0.2,localhost", rest_port=rest_port, host="127.0.0.2")
    try:
        assert listening("127.0.0.2", rest_port) and listening("127.0.0.1", rest_port)
        assert listening("127.0.0.2", grpc_port) and not listening("127.0.0.1", grpc_port)
        with grpc.insecure_channel(f"127.0.0.2:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
    finally:
        assert server.terminate() == 0
    server = launch("--config_path", str(config), "--rest_bind_address", "127.0.0.2",
                    host="127.0.0.2")
    try:
        assert not listening("127.0.0.1", server.rest_port)
    finally:
        assert server.terminate() == 0


def test_log_path_gets_the_log(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "ovms.log"
    server = start_server(config, "--log_path", str(path), "--log_level", "DEBUG")
    assert server.terminate() == 0
    text = path.read_text()
    assert "REST listening on" in text and "servable echo: loaded graph" in text
    assert "REST listening on" in server.log  # and the console too, as OVMS logs to both


def test_bad_values_are_usage_errors_naming_the_flag(config: Path, tmp_path: Path) -> None:
    for args, message in (
        (["--log_level", "LOUD"], "--log_level"),
        (["--plugin_config", '{"CPU": 1}'], "'CPU' must map to an object"),
        (["--grpc_channel_arguments", "nonsense"], "--grpc_channel_arguments: 'nonsense'"),
        (["--rest_workers", "many"], "--rest_workers"),
        (["--log_path", str(tmp_path / "no/such/dir/log")], "--log_path"),
        (["--metrics_enable=maybe"], "--metrics_enable"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ovserve", "--config_path", str(config), "--rest_port",
             str(free_port()), *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    # OVMS's metric rules are start-up errors (transport.metrics.config), exit 1
    result = subprocess.run(
        [sys.executable, "-m", "ovserve", "--config_path", str(config), "--rest_port",
         str(free_port()), "--metrics_enable", "--metrics_list", "ovms_nothing"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "'ovms_nothing' is not one of OVMS's" in result.stderr


def settings(*argv: str) -> ServerSettings:
    parser = cli.build_parser()
    args = parser.parse_args(["--config_path", "c.json", "--rest_port", "1", *argv])
    args.command_line = list(argv)
    return cli.server_settings(parser, args, [])


def test_the_settings_each_flag_gives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OVSERVE_DEVICE", raising=False)
    monkeypatch.delenv("OVSERVE_PLUGIN_CONFIG", raising=False)
    base = settings()
    assert (base.grpc_port, base.rest_port, base.config_poll_seconds) == (None, 1, 1.0)
    assert (base.metrics_enable, base.metrics_list) == (False, ())
    assert base.cors is not None and base.cors.origins == ("*",) and not base.cors.credentials
    assert settings("--port", "9000").grpc_port == 9000
    assert settings("--file_system_poll_wait_seconds", "0").config_poll_seconds == 0
    metrics = settings("--metrics_enable", "--metrics_list",
                       "ovms_requests_success,ovms_streams")
    assert metrics.metrics_enable and metrics.metrics_list == ("ovms_requests_success",
                                                               "ovms_streams")
    assert settings("--metrics_enable=false").metrics_enable is False
    assert settings("--target_device", "GPU.1").devices.device == "GPU.1"
    mixed = settings("--plugin_config", '{"NUM_STREAMS": "1", "cpu": {"X": 2}}').devices
    assert mixed.plugin_config == {"*": {"NUM_STREAMS": "1"}, "CPU": {"X": 2}}
    assert mixed.apply({"device": "GPU"})["plugin_config"] == {"NUM_STREAMS": "1"}
    assert mixed.apply({"device": "CPU"})["plugin_config"] == {"NUM_STREAMS": "1", "X": 2}
    cached = settings("--cache_dir", str(tmp_path)).devices
    assert cached.apply({})["plugin_config"] == {"CACHE_DIR": str(tmp_path)}
    bound = settings("--grpc_bind_address", "::1, localhost", "--rest_bind_address", "0.0.0.0")
    assert bound.grpc_addresses == ("::1", "localhost") and bound.rest_addresses == ("0.0.0.0",)
    assert settings().rest_addresses == ("0.0.0.0",)
    channel = settings("--grpc_channel_arguments", "grpc.max_connection_age_ms=2000,a.b=x")
    assert channel.grpc_options == (("grpc.max_connection_age_ms", 2000), ("a.b", "x"))
    cors = settings("--allowed_origins", "http://a.example, http://b.example",
                    "--allowed_methods", "GET,POST", "--allowed_headers", "authorization",
                    "--allow_credentials").cors
    assert cors == Cors(("http://a.example", "http://b.example"), ("GET", "POST"),
                            ("authorization",), True)
    assert settings("--allowed_origins", "").cors == Cors(origins=())


def test_flat_plugin_config_reaches_the_engines(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """OVMS's flat --plugin_config and --target_device reach every engine's config, laid over
    the graph's own (make serve's LLM graph, on a fake engine)."""
    import asyncio

    from ovserve.app import start
    from ovserve.engine import EngineConfig, EngineRegistry
    from ovserve.engine.fake import FakeEngine
    from ovserve.serving.server_config import load_server_config
    from tests.transport.fake_server import write_config as write_llm_config

    monkeypatch.delenv("OVSERVE_PLUGIN_CONFIG", raising=False)
    config = write_llm_config(tmp_path)
    made: list[EngineConfig] = []

    def factory(engine_config: EngineConfig) -> FakeEngine:
        made.append(engine_config)
        return FakeEngine("fake")

    async def run() -> None:
        server_settings = settings("--plugin_config", json.dumps({"NUM_STREAMS": "1"}),
                                   "--target_device", "CPU", "--host", "127.0.0.1",
                                   "--rest_port", str(free_port()))
        server_settings = type(server_settings)(**{**server_settings.__dict__,
                                                   "entries": load_server_config(config)})
        # the registry app.start builds, with the fake engine's factory
        running = await start(server_settings, EngineRegistry(
            factory, devices=server_settings.devices, overrides={}, lora=None))
        await running.stop()

    asyncio.run(run())
    assert made and all(c.device == "CPU" and c.plugin_config.get("NUM_STREAMS") == "1"
                        for c in made)
