"""The optional API key (``--api_key`` / ``OVSERVE_API_KEY``, as vLLM's ``--api-key``): every
request must carry ``Authorization: Bearer <key>`` (HTTP header or gRPC metadata), except
health, readiness and metrics, which probes and Prometheus call without one."""

from __future__ import annotations

import hmac
import re

from ovserve.errors import Unauthenticated

#: HTTP paths open without the key: probes, metrics, the version and the web page's files (the
#: page asks for the key and sends it with its API calls)
PUBLIC_PATHS = frozenset({"/", "/health", "/ping", "/version", "/metrics", "/v2/health/live",
                          "/v2/health/ready", "/v1/health/ready", "/v1/health/live"})
PUBLIC_PATTERNS = (re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/ready"),
                   re.compile(r"/ui(/.*)?"))
#: gRPC methods open without the key: KServe's liveness and readiness, grpc.health.v1
PUBLIC_METHODS = frozenset({"/inference.GRPCInferenceService/ServerLive",
                            "/inference.GRPCInferenceService/ServerReady",
                            "/inference.GRPCInferenceService/ModelReady"})
PUBLIC_SERVICES = ("/grpc.health.v1.Health/",)


class ApiKey:
    """Checks a request's ``authorization`` value against the server's key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("an API key must not be empty")
        self._expected = f"Bearer {key}".encode()

    def check(self, authorization: str | bytes | None) -> None:
        """Raises ``Unauthenticated`` unless ``authorization`` is ``Bearer <key>``."""
        given = authorization.encode() if isinstance(authorization, str) else authorization
        if not given:
            raise Unauthenticated("this server needs an API key: send it as "
                                  "'Authorization: Bearer <key>'")
        if not hmac.compare_digest(given.strip(), self._expected):
            raise Unauthenticated("the API key is not valid")


def public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or any(p.fullmatch(path) for p in PUBLIC_PATTERNS)


def public_method(method: str) -> bool:
    return method in PUBLIC_METHODS or method.startswith(PUBLIC_SERVICES)
