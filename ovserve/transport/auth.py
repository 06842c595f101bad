"""The optional API keys (``--api_key`` / ``OVSERVE_API_KEY`` as vLLM's ``--api-key``;
``--api_key_file`` / ``API_KEY`` as OVMS's): every request must carry ``Authorization: Bearer
<key>`` with one of them (HTTP header or gRPC metadata), except health, readiness, metrics,
``GET /v1/config`` and the web page's files, which probes, Prometheus and browsers fetch without
one. CORS preflights are answered before the key is looked at (``rest.app``)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from pathlib import Path

from ovserve.errors import Unauthenticated

#: HTTP paths open without the key: probes, metrics, the version and the web page's files (the
#: page asks for the key and sends it with its API calls)
PUBLIC_PATHS = frozenset({"/", "/health", "/ping", "/version", "/metrics", "/v2/health/live",
                          "/v2/health/ready", "/v1/health/ready", "/v1/health/live",
                          "/v1/config"})
PUBLIC_PATTERNS = (re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/ready"),
                   re.compile(r"/ui(/.*)?"))
#: gRPC methods open without the key: KServe's liveness and readiness, grpc.health.v1
PUBLIC_METHODS = frozenset({"/inference.GRPCInferenceService/ServerLive",
                            "/inference.GRPCInferenceService/ServerReady",
                            "/inference.GRPCInferenceService/ModelReady"})
PUBLIC_SERVICES = ("/grpc.health.v1.Health/",)


class ApiKey:
    """Checks a request's ``authorization`` value against the server's keys (any one of them
    lets the request in)."""

    def __init__(self, keys: str | Iterable[str]) -> None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys or not all(keys):
            raise ValueError("an API key must not be empty")
        self._expected = [f"Bearer {key}".encode() for key in keys]

    def check(self, authorization: str | bytes | None) -> None:
        """Raises ``Unauthenticated`` unless ``authorization`` is ``Bearer <one of the keys>``."""
        given = authorization.encode() if isinstance(authorization, str) else authorization
        if not given:
            raise Unauthenticated("this server needs an API key: send it as "
                                  "'Authorization: Bearer <key>'")
        given = given.strip()
        # every key is compared (no early exit): the time taken says nothing about which
        matches = [hmac.compare_digest(given, expected) for expected in self._expected]
        if not any(matches):
            raise Unauthenticated("the API key is not valid")


def read_key_file(path: Path) -> list[str]:
    """The keys in an API key file, one per line. OVMS reads the first line, trailing
    whitespace stripped; ovserve reads every non-blank line the same way (leading whitespace
    too). Raises ``ValueError`` naming the file when it cannot be read or holds no key (OVMS
    would then run open)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the API key file {path}: {reason}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"the API key file {path} holds no key (one key per line); an empty "
                         "file would leave the server open")
    return keys


def public_path(path: str) -> bool:
    return path in PUBLIC_PATHS or any(p.fullmatch(path) for p in PUBLIC_PATTERNS)


def public_method(method: str) -> bool:
    return method in PUBLIC_METHODS or method.startswith(PUBLIC_SERVICES)
