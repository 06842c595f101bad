"""CORS with OVMS's flags and defaults (issue 27, item 3): browser preflights (OPTIONS with
Origin and Access-Control-Request-Method) answered on every route, KServe v2, OpenAI /v1 and
/v3, metrics and the web page alike, before the API key is looked at; simple requests from an
origin get Access-Control-Allow-Origin, refusals too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.transport.server import Server, start_server, write_config

ORIGIN = "http://page.example"
ROUTES = [("POST", "/v2/models/echo/infer"), ("GET", "/v2/health/ready"), ("GET", "/v2"),
          ("GET", "/v2/models/echo"), ("POST", "/v1/chat/completions"),
          ("POST", "/v3/chat/completions"), ("POST", "/v3/completions"), ("GET", "/v3/models"),
          ("POST", "/v3/embeddings"), ("GET", "/v1/models"), ("GET", "/metrics"),
          ("GET", "/ui/"), ("GET", "/v1/config"), ("POST", "/v1/config/reload"),
          ("GET", "/no/such/route")]
KEY = "cors-test-key"


def preflight(server: Server, method: str, path: str, origin: str = ORIGIN,
              headers: str = "authorization,content-type") -> httpx.Response:
    return httpx.options(server.rest_url + path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """OVMS's defaults (no CORS flag given) with an API key."""
    server = start_server(write_config(tmp_path_factory.mktemp("graphs")), "--api_key", KEY)
    yield server
    assert server.terminate() == 0


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_preflight_is_answered_on_every_route_without_the_key(locked: Server, method: str,
                                                              path: str) -> None:
    reply = preflight(locked, method, path)
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == "*"
    assert method in reply.headers["access-control-allow-methods"].split(", ")
    assert reply.headers["access-control-allow-headers"] == "authorization,content-type"
    assert "access-control-allow-credentials" not in reply.headers


def test_simple_requests_carry_the_origin_header(locked: Server) -> None:
    page = {"Origin": ORIGIN}
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
    auth = {**page, "Authorization": f"Bearer {KEY}"}
    for reply in (httpx.get(f"{locked.rest_url}/v2/health/ready", headers=page),
                  httpx.post(f"{locked.rest_url}/v2/models/echo/infer", json=body,
                             headers=auth),
                  httpx.get(f"{locked.rest_url}/v3/models", headers=auth),
                  httpx.get(f"{locked.rest_url}/metrics", headers=page)):
        assert reply.status_code == 200, reply.text
        assert reply.headers["access-control-allow-origin"] == "*"
    # refusals too, so the page can read why: the key missing, a route that is not there
    refused = httpx.post(f"{locked.rest_url}/v3/chat/completions", json={}, headers=page)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    missing = httpx.get(f"{locked.rest_url}/no/such/route", headers=auth)
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"
    # no Origin (not a browser's cross-origin call): no CORS header (OVMS sends them anyway)
    plain = httpx.get(f"{locked.rest_url}/v2/health/ready")
    assert "access-control-allow-origin" not in plain.headers


def test_an_options_request_that_is_no_preflight_needs_the_key(locked: Server) -> None:
    reply = httpx.options(f"{locked.rest_url}/v3/models", headers={"Origin": ORIGIN})
    assert reply.status_code == 401


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        write_config(tmp_path_factory.mktemp("graphs")), "--allowed_origins",
        "http://a.example, http://b.example", "--allowed_methods", "GET,POST",
        "--allowed_headers", "content-type,authorization", "--allow_credentials")
    yield server
    assert server.terminate() == 0


def test_allowed_origins_methods_headers_and_credentials(listed: Server) -> None:
    """A list of origins is answered with the request's own origin when it is listed (a
    browser takes one origin, never a list); with credentials, never '*'."""
    for origin in ("http://a.example", "http://b.example"):
        reply = preflight(listed, "POST", "/v3/chat/completions", origin)
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-credentials"] == "true"
        assert reply.headers["access-control-allow-methods"] == "GET, POST"
        simple = httpx.get(f"{listed.rest_url}/v2/health/ready", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin
        assert "Origin" in simple.headers["vary"]
    for origin, method, headers, failure in (
        ("http://c.example", "POST", "content-type", "origin"),
        ("http://a.example", "DELETE", "content-type", "method"),
        ("http://a.example", "POST", "x-custom", "headers"),
    ):
        reply = preflight(listed, method, "/v3/chat/completions", origin, headers)
        assert reply.status_code == 400 and failure in reply.text
    stranger = httpx.get(f"{listed.rest_url}/v2/health/ready",
                         headers={"Origin": "http://c.example"})
    assert "access-control-allow-origin" not in stranger.headers


def test_no_allowed_origin_means_no_cors(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(write_config(tmp_path_factory.mktemp("graphs")),
                          "--allowed_origins", "")
    try:
        assert preflight(server, "GET", "/v2").status_code == 400
        reply = httpx.get(f"{server.rest_url}/v2", headers={"Origin": ORIGIN})
        assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers
    finally:
        assert server.terminate() == 0
