"""KServe v2 REST with httpx and tritonclient.http, plus /metrics, on a real server."""

from __future__ import annotations

import httpx
import numpy as np
import tritonclient.http as httpclient

from tests.transport.server import Server


def test_health_and_metadata(server: Server) -> None:
    base = server.rest_url
    assert httpx.get(f"{base}/v2").json()["name"] == "ovserve"
    assert httpx.get(f"{base}/v2/health/live").status_code == 200
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    for path in ("/v2/models/echo", "/v2/models/echo/versions/1"):
        meta = httpx.get(base + path).json()
        assert meta["name"] == "echo"
        assert [i["name"] for i in meta["inputs"]] == ["text"]
    for path in ("/v2/models/echo/ready", "/v2/models/echo/versions/1/ready"):
        assert httpx.get(base + path).json() == {"name": "echo", "ready": True}
    missing = httpx.get(f"{base}/v2/models/nope/ready")
    assert missing.status_code == 404 and "servable 'nope' not found" in missing.json()["error"]


def test_json_infer_returns_bytes_as_strings(server: Server) -> None:
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                        "data": ["What is", "relativity?"]}]}
    for path in ("/v2/models/echo/infer", "/v2/models/echo/versions/1/infer"):
        reply = httpx.post(server.rest_url + path, json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "model_name": "echo", "model_version": "1",
            "outputs": [
                {"name": "upper", "datatype": "BYTES", "shape": [2],
                 "data": ["WHAT IS", "RELATIVITY?"]},
                {"name": "count", "datatype": "INT32", "shape": [1], "data": [2]},
            ],
        }


def test_tritonclient_http_binary_extension(server: Server) -> None:
    client = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    tensor = httpclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"binary path"], dtype=np.object_), binary_data=True)
    outputs = [httpclient.InferRequestedOutput("upper", binary_data=True),
               httpclient.InferRequestedOutput("count", binary_data=False)]
    result = client.infer("echo", [tensor], outputs=outputs)
    assert result.as_numpy("upper").tolist() == [b"BINARY PATH"]
    assert result.as_numpy("count").tolist() == [1]
    assert client.is_model_ready("echo") and client.is_server_live()


def test_metrics_count_requests_errors_and_latency(server: Server) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["m"]}]}
    httpx.post(f"{server.rest_url}/v2/models/echo/infer", json=body)
    httpx.post(f"{server.rest_url}/v2/models/fail/infer", json=body)
    text = httpx.get(f"{server.rest_url}/metrics").text
    assert 'ovserve_requests_total{interface="rest",servable="echo"}' in text
    assert 'ovserve_request_errors_total{code="INTERNAL",interface="rest",servable="fail"}' in text
    assert 'ovserve_request_duration_seconds_count{interface="rest",servable="echo"}' in text
    assert "ovserve_streams_in_flight" in text


def test_versions_other_than_1_are_not_found(server: Server) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["v"]}]}
    assert httpx.post(f"{server.rest_url}/v2/models/echo/versions/1/infer",
                      json=body).status_code == 200
    for path in ("/v2/models/echo/versions/7/infer", "/v2/models/echo/versions/abc/ready",
                 "/v2/models/echo/versions/2"):
        reply = (httpx.post(f"{server.rest_url}{path}", json=body) if path.endswith("infer")
                 else httpx.get(f"{server.rest_url}{path}"))
        assert reply.status_code == 404, path
        assert "has no version" in reply.json()["error"]



def test_openapi_describes_kserve_infer(server: Server) -> None:
    spec = httpx.get(f"{server.rest_url}/openapi.json").json()
    post = spec["paths"]["/v2/models/{model}/infer"]["post"]
    body = post["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/InferRequestBody"
    assert "application/octet-stream" in body
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "InferResponseBody")
    assert {"400", "404", "413", "500", "503"} <= set(post["responses"])
    schemas = spec["components"]["schemas"]
    assert {"InferRequestBody", "RequestInput", "InferResponseBody", "KServeError"} <= set(schemas)

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    dangling = [r for r in refs(spec) if r.split("/")[-1] not in schemas]
    assert dangling == []
