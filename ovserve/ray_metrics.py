"""Every Ray Serve replica's own ``/metrics``, for Prometheus.

Serve's proxy sends each request, a scrape too, to one replica, and every replica has its own
engines and counters: ``/metrics`` through the proxy shows a different replica each time. So each
replica also serves its metrics on a port of its own (on its node's IP; ``metrics_port``, default
any free port) and records that address in Ray's key-value store under its replica actor's
name. Any replica answers ``GET /metrics/targets`` through the proxy in Prometheus' HTTP service
discovery format: one target per live replica, labelled with its application, deployment and
replica id. Prometheus' ``http_sd_configs`` pointed at it scrape every replica
(deploy/ray/prometheus.yml); replicas that come and go are picked up at the next refresh.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ovserve.transport.metrics.endpoint import MetricsEndpoint, Renderer

__all__ = ["NAMESPACE", "TARGETS_PATH", "ReplicaMetrics", "Targets", "targets"]

#: Ray's key-value namespace holding each replica's target
NAMESPACE = "ovserve_metrics"
TARGETS_PATH = "/metrics/targets"


class ReplicaMetrics:
    """This replica's metrics on their own port, registered as a scrape target until
    ``close()``. Call inside a Serve replica."""

    def __init__(self, metrics: Renderer, port: int = 0) -> None:
        import ray
        from ray import serve
        from ray.experimental import internal_kv

        replica = serve.get_replica_context().replica_id
        self.key = replica.to_full_id_str()  # the replica actor's name
        host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self.endpoint = MetricsEndpoint(metrics, host, port)
        deployment = replica.deployment_id
        target = {"targets": [self.endpoint.address],
                  "labels": {"ray_application": deployment.app_name,
                             "ray_deployment": deployment.name,
                             "ray_replica": replica.unique_id}}
        internal_kv._internal_kv_put(self.key, json.dumps(target), namespace=NAMESPACE)

    def close(self) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(self.key, namespace=NAMESPACE)
        self.endpoint.close()


def targets() -> list[dict[str, Any]]:
    """Every live replica's target (Prometheus' http_sd format); those of replicas that died
    without unregistering are dropped from the store."""
    import ray
    from ray.experimental import internal_kv

    alive = {a["name"] if isinstance(a, dict) else a
             for a in ray.util.list_named_actors(all_namespaces=True)}
    found: list[dict[str, Any]] = []
    for key in sorted(internal_kv._internal_kv_list("", namespace=NAMESPACE)):
        name = key.decode()
        if name not in alive:
            internal_kv._internal_kv_del(key, namespace=NAMESPACE)
            continue
        value = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
        if value is not None:
            found.append(json.loads(value))
    return found


class Targets:
    """ASGI: ``GET /metrics/targets`` answered with ``targets()``; the rest goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("path") != TARGETS_PATH
                or scope.get("method") != "GET"):
            await self.app(scope, receive, send)
            return
        body = json.dumps(await asyncio.to_thread(targets)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
