"""ovserve as Ray Serve replicas: each replica is one ovserve HTTP front end (KServe v2 REST and
the OpenAI API) with its own engines, behind Ray Serve's HTTP proxy, which spreads requests
over the replicas and replaces one that dies.

    from ray import serve
    from ovserve.ray_serve import ovserve_app

    serve.run(ovserve_app("graphs/llm/config.json", num_replicas=2), route_prefix="/")

or with Serve's CLI and a config file (``serve run examples/ray_serve.yaml``, built by
``app_builder``); see the README
for autoscaling. LoRA adapters: every replica reads the same adapter folders
(``lora_dirs``), so any replica serves any adapter; a client that sends Ray's
``serve_multiplexed_model_id`` header with the adapter's id is routed to replicas that have
recently served it (``serve.multiplexed``), which keeps an adapter's slot warm on few replicas.
Metrics: each replica also serves its own /metrics on a port of its own, and any replica lists
them all at ``/metrics/targets`` for Prometheus' HTTP service discovery (``ray_metrics``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from ovserve.cli import env_flag, env_generation_overrides, env_plugin_config
from ovserve.engine import EngineRegistry
from ovserve.engine.base import LoraOptions
from ovserve.engine.cpu_properties import ENV_OFF, CpuTable
from ovserve.engine.devices import DeviceChoice
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.ray_metrics import ReplicaMetrics, Targets
from ovserve.serving.registry import Registry
from ovserve.serving.server_config import load_server_config
from ovserve.transport.kserve import DataPlane
from ovserve.transport.metrics import Metrics
from ovserve.transport.rest.app import DEFAULT_MAX_BODY_BYTES, build_app
from ovserve.transport.state import ServerState

log = logging.getLogger("ovserve.ray_serve")
MULTIPLEX_HEADER = "serve_multiplexed_model_id"


class _Multiplexed:
    """Calls the replica's ``serve.multiplexed`` loader for requests that name an adapter in
    Ray's header, so Serve's router learns which replicas hold which adapter."""

    def __init__(self, app: ASGIApp, loader: Callable[[str], Awaitable[str]]) -> None:
        self.app = app
        self.loader = loader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            from ray import serve

            model_id = serve.get_multiplexed_model_id()
            if model_id:
                await self.loader(model_id)
        await self.app(scope, receive, send)


def build_asgi_app(config_path: str | Path, *, lora_dirs: Sequence[str] = (),
                   max_loras: int = 8, device: str | None = None,
                   plugin_config: Mapping[str, Mapping[str, Any]] | None = None,
                   generation_overrides: Mapping[str, Any] | None = None,
                   max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                   api_key: str | None = None, deterministic: bool | None = None,
                   cpu_table: bool | None = None,
                   metrics_port: int | None = None) -> FastAPI:
    """One replica's app: the servables of ``config_path`` loaded at startup (ASGI lifespan,
    which Ray Serve runs when the replica starts) and unloaded at shutdown. What is not given
    comes from the environment variables the CLI reads (OVSERVE_PLUGIN_CONFIG,
    OVSERVE_OVERRIDE_GENERATION_CONFIG, OVSERVE_DETERMINISTIC, OVSERVE_NO_CPU_TABLE,
    OVSERVE_API_KEY); ``cpu_table`` False is --no_cpu_table.
    ``metrics_port``: serve the replica's /metrics on this port too (0: any free one) and
    register it as a scrape target (``ray_metrics``; inside Serve only); None: not."""
    lora = LoraOptions(dirs=tuple(Path(d) for d in lora_dirs), max_loras=max_loras) \
        if lora_dirs else None
    if plugin_config is None:
        plugin_config = env_plugin_config()
    if generation_overrides is None:
        generation_overrides = env_generation_overrides()
    if deterministic is None:
        deterministic = env_flag("OVSERVE_DETERMINISTIC")
    if cpu_table is None:
        cpu_table = not env_flag(ENV_OFF)
    engines = EngineRegistry(overrides=generation_overrides, lora=lora,
                             devices=DeviceChoice(device, dict(plugin_config)),
                             deterministic=deterministic,
                             cpu_table=CpuTable(enabled=cpu_table))
    registry = Registry(BUILTIN_CALCULATORS, engines)
    state = ServerState(registry)
    metrics = Metrics(engines)
    app = build_app(DataPlane(registry, metrics, state), max_body_bytes=max_body_bytes,
                    api_key=api_key or os.environ.get("OVSERVE_API_KEY") or None)
    entries = load_server_config(Path(config_path))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await registry.load(entries)
        failed = [n for n, s in registry.states.items() if s.servable is None]
        if failed:
            log.error("replica: servables not available: %s", ", ".join(failed))
        log.info("replica: serving %s", ", ".join(registry.states))
        scraped = ReplicaMetrics(metrics, metrics_port) if metrics_port is not None else None
        try:
            yield
        finally:
            if scraped is not None:
                scraped.close()
            state.accepting = False
            await registry.unload()

    app.router.lifespan_context = lifespan
    return app


def ovserve_app(config_path: str | Path, *, num_replicas: int | str = 1,
                autoscaling_config: Mapping[str, Any] | None = None,
                ray_actor_options: Mapping[str, Any] | None = None,
                max_ongoing_requests: int = 256, **app_options: Any) -> Any:
    """A Ray Serve application of ovserve replicas (``serve.run`` it). ``num_replicas`` or
    ``autoscaling_config`` (e.g. ``{"min_replicas": 1, "max_replicas": 4,
    "target_ongoing_requests": 32}``: one engine batches many requests, so scale on ongoing
    requests, not on one per replica); ``app_options`` go to ``build_asgi_app``."""
    from ray import serve

    options: dict[str, Any] = {"max_ongoing_requests": max_ongoing_requests,
                               "ray_actor_options": dict(ray_actor_options or {}),
                               "health_check_period_s": 5}
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
    else:
        options["num_replicas"] = num_replicas
    max_loras = int(app_options.get("max_loras", 8))
    app_options.setdefault("metrics_port", 0)

    @serve.deployment(name="ovserve", **options)
    @serve.ingress()
    class OvserveReplica:
        """One ovserve front end with its own engines; its app is built on the replica."""

        def __init__(self, config_path: str, app_options: dict[str, Any]) -> None:
            self.config_path = config_path
            self.app_options = app_options

        async def __serve_build_asgi_app__(self) -> ASGIApp:
            app = build_asgi_app(self.config_path, **self.app_options)
            return Targets(_Multiplexed(app, self.adapter))

        @serve.multiplexed(max_num_models_per_replica=max_loras)  # type: ignore[untyped-decorator]
        async def adapter(self, model_id: str) -> str:
            """Ray's multiplexing hook: the engine reads the adapter from the shared folders
            on first use; this records it as held by this replica."""
            return model_id

    return OvserveReplica.bind(  # type: ignore[attr-defined]
        str(Path(config_path).resolve()), app_options)


def app_builder(args: dict[str, str]) -> Any:
    """Serve's application builder, for its CLI and config files:

        serve run ovserve.ray_serve:app_builder config_path=graphs/llm/config.json num_replicas=2

    ``args``: config_path (required), num_replicas, min_replicas / max_replicas /
    target_ongoing_requests (autoscaling instead of a fixed count), device, lora_dir, api_key
    (else the replicas' OVSERVE_API_KEY), metrics_port (each replica's own /metrics; default
    any free port, listed at /metrics/targets)."""
    if "config_path" not in args:
        raise ValueError("config_path=... is required (an OVMS-style config.json)")
    options: dict[str, Any] = {}
    if "max_replicas" in args:
        options["autoscaling_config"] = {
            "min_replicas": int(args.get("min_replicas", 1)),
            "max_replicas": int(args["max_replicas"]),
            "target_ongoing_requests": int(args.get("target_ongoing_requests", 32))}
    else:
        options["num_replicas"] = int(args.get("num_replicas", 1))
    if "device" in args:
        options["device"] = args["device"]
    if "lora_dir" in args:
        options["lora_dirs"] = [args["lora_dir"]]
    if "api_key" in args:
        options["api_key"] = args["api_key"]
    if "metrics_port" in args:
        options["metrics_port"] = int(args["metrics_port"])
    return ovserve_app(args["config_path"], **options)
