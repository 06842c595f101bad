"""Composition root: settings -> registry -> gRPC and REST servers on one event loop.

SIGTERM/SIGINT: readiness goes false, both servers stop accepting work, in-flight requests
and streams get ``grace`` seconds to finish, servables unload, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2_grpc

from ovserve.engine import EngineRegistry
from ovserve.engine.base import LoraOptions
from ovserve.engine.cpu_properties import CpuTable
from ovserve.engine.devices import DeviceChoice
from ovserve.errors import OvserveError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.serving.registry import Registry
from ovserve.serving.reload import ConfigReloader
from ovserve.serving.server_config import ServableEntry
from ovserve.transport.admission import Admission, AdmissionInterceptor, Limits
from ovserve.transport.auth import ApiKey
from ovserve.transport.grpc.auth import ApiKeyInterceptor
from ovserve.transport.grpc.errors import ErrorInterceptor
from ovserve.transport.grpc.servicer import InferenceServicer
from ovserve.transport.kserve import DataPlane
from ovserve.transport.metrics import (
    Metrics,
    MetricsConfigError,
    OvmsMetricsConfig,
    serving_servables,
)
from ovserve.transport.metrics.admission import AdmissionView
from ovserve.transport.names import ServedNames
from ovserve.transport.request_ids import RequestIdInterceptor
from ovserve.transport.rest.app import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    OVMS_CORS,
    Cors,
    build_app,
)
from ovserve.transport.rest.http_protocol import DEFAULT_HEADER_TIMEOUT, HeaderDeadlineProtocol
from ovserve.transport.state import ServerState
from ovserve.transport.tracing import TraceSettings, Tracing, TracingInterceptor

log = logging.getLogger("ovserve")


class StartupError(OvserveError):
    """The server cannot start (a port in use, a config that does not load)."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server runs with, as the command line gives it (``cli.server_settings``);
    the defaults suit programs that build one directly (tests, Ray Serve)."""

    entries: list[ServableEntry]
    #: the address both servers listen on unless grpc_hosts / rest_hosts say otherwise
    host: str = "0.0.0.0"
    #: None: no gRPC server (OVMS starts it only when --port is given)
    grpc_port: int | None = 9000
    rest_port: int | None = 8000
    #: --grpc_bind_address / --rest_bind_address: the addresses (or host names) each server
    #: listens on; empty: ``host``
    grpc_hosts: tuple[str, ...] = ()
    rest_hosts: tuple[str, ...] = ()
    #: --grpc_channel_arguments: extra gRPC server options, e.g. ("grpc.max_connection_age_ms",
    #: 2000)
    grpc_options: tuple[tuple[str, int | str], ...] = ()
    grace_seconds: float = 30.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Laid over every model's generation_config.json (vLLM's --override-generation-config).
    generation_overrides: Mapping[str, Any] = field(default_factory=dict)
    devices: DeviceChoice = field(default_factory=DeviceChoice)
    #: LoRA adapters of every LLM whose graph sets none (--lora_dir, NIM_PEFT_SOURCE)
    lora: LoraOptions | None = None
    #: requests must carry "Authorization: Bearer <one of these>" (--api_key, OVSERVE_API_KEY,
    #: --api_key_file, API_KEY); empty: open
    api_keys: tuple[str, ...] = ()
    #: cross-origin access (--allowed_origins ...; default OVMS's); None: no CORS
    cors: Cors | None = OVMS_CORS
    #: seconds a client gets to send a request's line and headers (slow ones are closed)
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    #: seconds a request body may pause between reads (408 and the connection closed)
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: every LLM engine in deterministic mode (--deterministic, engine.determinism)
    deterministic: bool = False
    #: LLM engines on CPU get the properties of engine.cpu_properties' table for this CPU
    #: family (False: --no_cpu_table, OpenVINO's defaults)
    cpu_table: bool = True
    #: every LLM's chat template instead of its own (--chat_template); requests may bring
    #: their own (--trust_request_chat_template)
    chat_template: str | None = None
    trust_request_chat_template: bool = False
    #: --file_system_poll_wait_seconds: how often config.json and its graphs are checked for
    #: changes (OVMS's default 1; 0: never). Read by the config reload.
    config_poll_seconds: float = 1.0
    #: --metrics_enable / --metrics_list: OVMS's switch and list for its ``ovms_*`` metric
    #: families (/metrics serves ovserve's own families whatever they say)
    metrics_enable: bool = False
    metrics_list: tuple[str, ...] = ()
    #: the config file the entries came from (None: --model_path, --task)
    config_path: Path | None = None
    #: --max_concurrent_requests / --max_queued_requests (transport.admission); None: no limit
    max_concurrent_requests: int | None = None
    max_queued_requests: int | None = None
    #: --served_model_name: servable -> its aliases (transport.names)
    served_model_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: --enable_request_id_headers: responses carry X-Request-Id (transport.request_ids)
    request_id_headers: bool = False
    #: --otlp_traces_endpoint: OpenTelemetry traces over OTLP/gRPC (transport.tracing); None:
    #: off (nothing of OpenTelemetry is imported)
    otlp_traces_endpoint: str | None = None

    @property
    def grpc_addresses(self) -> tuple[str, ...]:
        return self.grpc_hosts or (self.host,)

    @property
    def rest_addresses(self) -> tuple[str, ...]:
        return self.rest_hosts or (self.host,)


def _address(host: str, port: int) -> str:
    """``host:port`` as gRPC takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    """A bound socket, or a one-line ``StartupError`` naming the port and the reason.

    The protocol is IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on accepted sockets whose proto says TCP. With it on, a streamed chunk
    written while the previous one is unacknowledged waits for the client's delayed ACK
    (about 40 ms on a reused keep-alive connection)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {what} port {port} of {host}: {exc.strerror}"
                           ) from exc
    return sock


def build_grpc_server(
    plane: DataPlane, health_servicer: health.aio.HealthServicer, max_message_bytes: int,
    api_key: str | Sequence[str] | None = None,
    extra_options: Sequence[tuple[str, int | str]] = (),
    admission: Admission | None = None, request_id_headers: bool = False,
    tracing: Tracing | None = None,
) -> grpc.aio.Server:
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    given = {name for name, _ in extra_options}
    options = [o for o in options if o[0] not in given] + list(extra_options)
    # the call's id first, so the error interceptor's log lines carry it
    interceptors: list[grpc.aio.ServerInterceptor] = [RequestIdInterceptor(request_id_headers),
                                                      ErrorInterceptor()]
    if tracing is not None:  # a refusal is in the trace too
        interceptors.append(TracingInterceptor(tracing))
    if admission is not None:  # inside the error interceptor: refusals become its codes
        interceptors.append(AdmissionInterceptor(admission))
    if api_key:  # checked first: a call without the key is refused before anything else
        interceptors.insert(0, ApiKeyInterceptor(ApiKey(api_key)))
    server = grpc.aio.server(options=options, interceptors=interceptors)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(plane), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the app owns SIGTERM for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningServer:
    """Both servers, started by ``start``; ``stop`` drains and unloads."""

    settings: ServerSettings
    engines: EngineRegistry
    registry: Registry
    state: ServerState
    health: health.aio.HealthServicer
    grpc_server: grpc.aio.Server | None
    uv: _Uvicorn | None
    uv_task: asyncio.Task[None] | None
    health_task: asyncio.Task[None]
    reloader: ConfigReloader | None = None
    tracing: Tracing | None = None

    async def stop(self) -> None:
        log.info("shutting down: finishing in-flight requests (grace %.0f s)",
                 self.settings.grace_seconds)
        if self.reloader is not None:
            await self.reloader.stop()
        self.state.accepting = False
        self.health_task.cancel()
        await self.health.enter_graceful_shutdown()
        if self.uv is not None:
            self.uv.should_exit = True
        # just before the grace period runs out, whatever still generates is ended with an
        # error each protocol reports (an SSE error event and [DONE], an in-band gRPC error, a
        # 503) and its KV cache freed, rather than being cut off mid-stream
        grace = self.settings.grace_seconds
        cutoff = asyncio.create_task(self._end_requests_after(max(grace - min(1.0, grace / 10),
                                                                  0.0)))
        try:
            if self.grpc_server is not None:
                await self.grpc_server.stop(grace)
            if self.uv_task is not None:
                await self.uv_task
        finally:
            cutoff.cancel()
        await self.registry.unload()
        if self.tracing is not None:  # the spans still batched go out
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)
        log.info("stopped")

    async def _end_requests_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        ended = self.engines.end_requests("the server is shutting down (its grace period ran "
                                          "out)")
        if ended:
            log.warning("shutdown: grace period over, ended %d request(s) still generating",
                        ended)


async def start(settings: ServerSettings, engines: EngineRegistry | None = None
                ) -> RunningServer:
    """Load every servable and start the servers asked for (gRPC with a ``grpc_port``, REST
    with a ``rest_port``). ``engines``: the engine registry (one
    with openvino-genai engines unless given, e.g. one of fake engines in tests). Raises
    ``StartupError`` when a port cannot be used."""
    engines = engines if engines is not None else EngineRegistry(
        overrides=settings.generation_overrides, lora=settings.lora, devices=settings.devices,
        deterministic=settings.deterministic, chat={
            "chat_template": settings.chat_template,
            "trust_request_chat_template": settings.trust_request_chat_template},
        cpu_table=CpuTable(enabled=settings.cpu_table))
    registry = Registry(BUILTIN_CALCULATORS, engines)  # hands engines down to the graphs
    try:  # OVMS's ovms_* families: --metrics_enable/--metrics_list or config.json's block
        ovms = OvmsMetricsConfig.resolve(settings.metrics_enable, settings.metrics_list,
                                         settings.config_path, settings.rest_port)
    except MetricsConfigError as exc:
        raise StartupError(str(exc)) from exc
    state = ServerState(registry)
    metrics = Metrics(engines, ovms, serving_servables(registry))
    admission = Admission(Limits(settings.max_concurrent_requests,
                                 settings.max_queued_requests), _waiting(engines))
    metrics.registry.register(AdmissionView(admission))
    tracing = _tracing(settings.otlp_traces_endpoint)
    health_servicer = health.aio.HealthServicer()
    plane = DataPlane(registry, metrics, state, ServedNames(settings.served_model_names))
    grpc_server = None
    if settings.grpc_port is not None:
        grpc_server = build_grpc_server(plane, health_servicer, settings.max_body_bytes,
                                        settings.api_keys, settings.grpc_options, admission,
                                        settings.request_id_headers, tracing)
        for host in settings.grpc_addresses:
            # Probe the port ourselves: grpc core only logs a multi-line error when it fails.
            bind_socket(host, settings.grpc_port, "gRPC").close()
            try:
                grpc_server.add_insecure_port(_address(host, settings.grpc_port))
            except RuntimeError as exc:
                raise StartupError(f"cannot listen on gRPC port {settings.grpc_port} of "
                                   f"{host}") from exc
    rest_sockets = []
    if settings.rest_port is not None:
        for host in settings.rest_addresses:
            rest_socket = bind_socket(host, settings.rest_port, "REST")
            rest_socket.listen(2048)
            rest_sockets.append(rest_socket)

    await registry.load(settings.entries)
    # config.json, its graphs and version folders, watched (--file_system_poll_wait_seconds)
    # and reloaded on demand (POST /v1/config/reload)
    reloader = ConfigReloader(registry, settings.config_path, settings.entries,
                              settings.config_poll_seconds)
    failed = {n: s.error for n, s in registry.states.items() if s.servable is None}
    reported: dict[str, int] = {}
    await _report_health(registry, health_servicer, reported)
    health_task = asyncio.create_task(_keep_reporting_health(registry, health_servicer,
                                                             reported))
    if grpc_server is not None:
        await grpc_server.start()
        log.info("gRPC listening on %s port %d", ", ".join(settings.grpc_addresses),
                 settings.grpc_port)
    else:
        log.info("gRPC off (no --port)")
    if failed:
        log.warning("servables not available: %s", ", ".join(failed))

    uv: _Uvicorn | None = None
    uv_task: asyncio.Task[None] | None = None
    if rest_sockets:
        app = build_app(plane, max_body_bytes=settings.max_body_bytes,
                        api_key=settings.api_keys, body_timeout=settings.body_timeout,
                        cors=settings.cors, admission=admission,
                        request_id_headers=settings.request_id_headers, tracing=tracing)
        # httptools: uvicorn's C HTTP parser (h11, the pure-Python fallback, costs more CPU
        # per streamed chunk, and that CPU is taken from the engine on small machines), with
        # a deadline for request heads and no chunked coding for HTTP/1.0 clients
        protocol = type("HttpProtocol", (HeaderDeadlineProtocol,),
                        {"header_timeout": settings.header_timeout})
        config = uvicorn.Config(app, log_level="warning", lifespan="off", http=protocol,
                                timeout_graceful_shutdown=int(settings.grace_seconds))
        uv = _Uvicorn(config)
        uv_task = asyncio.create_task(uv.serve(sockets=rest_sockets))
        log.info("REST listening on %s port %d", ", ".join(settings.rest_addresses),
                 settings.rest_port)
    reloader.start()
    return RunningServer(settings, engines, registry, state, health_servicer, grpc_server, uv,
                         uv_task, health_task, reloader, tracing)


def _tracing(endpoint: str | None) -> Tracing | None:
    """The server's tracer for --otlp_traces_endpoint (None: off, also with OTEL_SDK_DISABLED
    set, as OpenTelemetry's SDKs read it)."""
    if not endpoint:
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.warning("traces off: OTEL_SDK_DISABLED is true (--otlp_traces_endpoint %s ignored)",
                    endpoint)
        return None
    try:
        return Tracing(TraceSettings(endpoint))
    except ImportError as exc:
        raise StartupError(f"--otlp_traces_endpoint needs OpenTelemetry's SDK and OTLP gRPC "
                           f"exporter (pip install opentelemetry-sdk "
                           f"opentelemetry-exporter-otlp-proto-grpc): {exc}") from exc


def _waiting(engines: EngineRegistry) -> Callable[[], int]:
    """Requests waiting for an engine slot, over every LLM engine (--max_queued_requests)."""
    def count(engine: Any) -> int:
        cheap = getattr(engine, "waiting", None)  # EngineBase's: no measurements copied
        return int(cheap()) if callable(cheap) else int(engine.stats().waiting_requests)

    def waiting() -> int:
        return sum(count(engine) for engine in engines.engines())

    return waiting


async def _report_health(registry: Registry, servicer: health.aio.HealthServicer,
                         reported: dict[str, int]) -> None:
    """gRPC health (grpc.health.v1, per servable and "" for the server) as readiness says: a
    servable whose engine is restarting is NOT_SERVING until it is back."""
    serving, not_serving = (health_pb2.HealthCheckResponse.SERVING,
                            health_pb2.HealthCheckResponse.NOT_SERVING)
    statuses = {name: serving if state.servable is not None and state.servable.ready
                else not_serving for name, state in registry.states.items()}
    statuses[""] = serving if registry.ready() else not_serving
    statuses.update((name, not_serving) for name in reported if name not in statuses)  # removed
    for name, status in statuses.items():
        if reported.get(name) != status:
            await servicer.set(name, status)
            reported[name] = status


async def _keep_reporting_health(registry: Registry, servicer: health.aio.HealthServicer,
                                 reported: dict[str, int], every: float = 0.5) -> None:
    while True:
        await asyncio.sleep(every)
        await _report_health(registry, servicer, reported)


async def serve(settings: ServerSettings) -> None:
    """Run until SIGTERM/SIGINT. Raises ``StartupError`` when the server cannot start."""
    server = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = ([f"gRPC :{settings.grpc_port}"] if settings.grpc_port is not None else []) + (
        [f"REST :{settings.rest_port}"] if settings.rest_port is not None else [])
    print(f"ovserve: serving {', '.join(server.registry.states)} ({', '.join(ports)})",
          flush=True)
    await stop.wait()
    await server.stop()
