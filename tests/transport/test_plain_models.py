"""Plain OpenVINO models in ``model_config_list`` (version folders, version policy, nireq,
plugin_config) behind a real server: tritonclient over gRPC and HTTP, and curl, per version;
metadata and readiness per version; 32 concurrent requests on one compiled model."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.conftest import plugin_config
from tests.engine.model_files import affine, assert_affine, save, unary
from tests.transport.server import Server, start_server

F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # $OVSERVE_PLUGIN_CONFIG may lay another over it
#: version -> the model compiled directly (the server's properties), what answers must equal
DIRECT: dict[int, Any] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("models")
    import openvino as ov

    for version in (1, 2, 3):
        path = save(affine(version), root / "models" / "affine" / str(version))
        DIRECT[version] = ov.Core().compile_model(str(path), "CPU", plugin_config(F32))
    for version in (1, 2):  # the default policy serves the latest only
        plus = unary("x", "x_plus", [2], float(version))
        plus.set_rt_info(["low", "high"], ["model_info", "labels"])  # type: ignore[attr-defined]
        save(plus, root / "models" / "plus" / str(version))
    (root / "models" / "plus" / "7").mkdir()  # a version folder without a model: skipped
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [
        {"config": {"name": "affine", "base_path": "models/affine", "nireq": 4,
                    "model_version_policy": {"specific": {"versions": [1, 3]}},
                    "plugin_config": F32}},
        {"config": {"name": "plus", "base_path": "models/plus", "target_device": "CPU"}},
    ]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0
    assert "model affine: serving version(s) 1, 3" in server.log


def inputs_of(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, 4)).astype(np.float32),
            rng.standard_normal((batch, 3)).astype(np.float32))


def grpc_infer(url: str, a: np.ndarray, b: np.ndarray, version: str = ""
               ) -> grpcclient.InferResult:
    client = grpcclient.InferenceServerClient(url)
    inputs = [grpcclient.InferInput("a", list(a.shape), "FP32"),
              grpcclient.InferInput("b", list(b.shape), "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return client.infer("affine", inputs, model_version=version)


def run_directly(version: int, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """The model run in this process (an infer request of its own: threads share none)."""
    request = DIRECT[version].create_infer_request()
    request.infer({"a": a, "b": b})
    return {name: np.array(request.get_tensor(name).data) for name in ("y", "argmax")}


def assert_answers(result: object, version: int, a: np.ndarray, b: np.ndarray) -> None:
    """The server's answer equals running the model directly (and numpy's, roughly)."""
    direct = run_directly(version, a, b)
    as_numpy = result.as_numpy  # type: ignore[attr-defined]
    np.testing.assert_allclose(as_numpy("y"), direct["y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(as_numpy("argmax"), direct["argmax"])
    assert_affine(as_numpy("y"), as_numpy("argmax"), version, a, b)


def test_grpc_infer_on_each_version(server: Server) -> None:
    a, b = inputs_of(3, 0)
    for version in (1, 3):
        result = grpc_infer(server.grpc_url, a, b, str(version))
        assert result.get_response().model_version == str(version)
        assert_answers(result, version, a, b)
    latest = grpc_infer(server.grpc_url, a, b)  # no version: the latest served
    assert latest.get_response().model_version == "3"
    assert_answers(latest, 3, a, b)
    assert not np.allclose(grpc_infer(server.grpc_url, a, b, "1").as_numpy("y"),
                           latest.as_numpy("y"))


def test_http_infer_binary_and_json(server: Server) -> None:
    client = httpclient.InferenceServerClient(f"localhost:{server.rest_port}")
    a, b = inputs_of(2, 1)
    for binary in (True, False):
        inputs = [httpclient.InferInput("a", list(a.shape), "FP32"),
                  httpclient.InferInput("b", list(b.shape), "FP32")]
        inputs[0].set_data_from_numpy(a, binary_data=binary)
        inputs[1].set_data_from_numpy(b, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("y", binary_data=binary),
                   httpclient.InferRequestedOutput("argmax", binary_data=binary)]
        result = client.infer("affine", inputs, model_version="1", outputs=outputs)
        assert_answers(result, 1, a, b)


def test_curl_infer_per_version(server: Server) -> None:
    a, b = inputs_of(1, 2)
    body = json.dumps({"inputs": [
        {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": a.ravel().tolist()},
        {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": b.ravel().tolist()}]})
    for version in (1, 3):
        out = subprocess.run(
            ["curl", "-s", "-d", body,
             f"{server.rest_url}/v2/models/affine/versions/{version}/infer"],
            capture_output=True, text=True, check=True).stdout
        answer = json.loads(out)
        assert (answer["model_name"], answer["model_version"]) == ("affine", str(version))
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["y"]["shape"] == [1, 3] and outputs["y"]["datatype"] == "FP32"
        assert outputs["argmax"]["datatype"] == "INT64"
        expected = run_directly(version, a, b)["y"]
        np.testing.assert_allclose(np.array(outputs["y"]["data"]).reshape(1, 3), expected,
                                   rtol=1e-6, atol=1e-6)
    status = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", body,
         f"{server.rest_url}/v2/models/affine/versions/2/infer"],
        capture_output=True, text=True, check=True).stdout
    assert status == "404"  # version 2 is on disk but not in the policy


def test_metadata_has_the_real_tensors(server: Server) -> None:
    meta = httpx.get(f"{server.rest_url}/v2/models/affine").json()
    assert meta == {
        "name": "affine", "versions": ["1", "3"], "platform": "OpenVINO",
        "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 4]},
                   {"name": "b", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]},
                    {"name": "argmax", "datatype": "INT64", "shape": [-1]}]}
    assert httpx.get(f"{server.rest_url}/v2/models/affine/versions/1").json() == meta
    assert httpx.get(f"{server.rest_url}/v2/models/affine/versions/2").status_code == 404
    grpc_meta = grpcclient.InferenceServerClient(server.grpc_url).get_model_metadata(
        "plus", as_json=True)
    assert grpc_meta["versions"] == ["2"]  # the default policy: the latest version only
    assert grpc_meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["2"]}]
    assert grpc_meta["outputs"] == [{"name": "x_plus", "datatype": "FP32", "shape": ["2"]}]
    rest_meta = httpx.get(f"{server.rest_url}/v2/models/plus").json()
    assert rest_meta["rt_info"] == {"model_info": {"labels": "low high"}}  # as OVMS adds it


def test_readiness_per_version(server: Server) -> None:
    assert httpx.get(f"{server.rest_url}/v2/models/affine/ready").status_code == 200
    for version, status in (("1", 200), ("3", 200), ("2", 404), ("x", 404)):
        got = httpx.get(f"{server.rest_url}/v2/models/affine/versions/{version}/ready")
        assert got.status_code == status, (version, got.text)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert client.is_model_ready("affine", "3")
    assert client.is_model_ready("plus")
    with pytest.raises(InferenceServerException, match="no version '1'"):
        client.is_model_ready("plus", "1")
    assert client.is_server_ready()


def test_32_concurrent_requests(server: Server) -> None:
    cases = [(i, *inputs_of(1 + i % 4, 100 + i)) for i in range(32)]

    def one(case: tuple[int, np.ndarray, np.ndarray]) -> None:
        index, a, b = case
        version = 1 + 2 * (index % 2)
        assert_answers(grpc_infer(server.grpc_url, a, b, str(version)), version, a, b)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, cases))


@pytest.mark.parametrize(("inputs", "message"), [
    ({"a": ("FP32", [1, 4]), "c": ("FP32", [1, 3])}, "has no input 'c'"),
    ({"a": ("FP32", [1, 4])}, "missing input 'b'"),
    ({"a": ("FP32", [1, 5]), "b": ("FP32", [1, 3])}, "input 'a' takes shape [?,4]"),
    ({"a": ("INT32", [1, 4]), "b": ("FP32", [1, 3])}, "input 'a' takes FP32, not INT32"),
])
def test_wrong_inputs_are_400_naming_the_input(
        server: Server, inputs: dict[str, tuple[str, list[int]]], message: str) -> None:
    body = {"inputs": [{"name": n, "datatype": dt, "shape": shape,
                        "data": [1] * int(np.prod(shape))} for n, (dt, shape) in inputs.items()]}
    answer = httpx.post(f"{server.rest_url}/v2/models/affine/infer", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    grpc_inputs = []
    for name, (datatype, shape) in inputs.items():
        tensor = grpcclient.InferInput(name, shape, datatype)
        tensor.set_data_from_numpy(np.ones(shape, dtype=np.int32 if datatype == "INT32"
                                           else np.float32))
        grpc_inputs.append(tensor)
    with pytest.raises(InferenceServerException) as info:
        client.infer("affine", grpc_inputs)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in info.value.message()


def test_a_raw_size_that_does_not_fit_is_400(server: Server) -> None:
    header = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 12}},
        {"name": "b", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}},
    ]}).encode()
    answer = httpx.post(f"{server.rest_url}/v2/models/affine/infer", content=header + bytes(24),
                        headers={"Inference-Header-Content-Length": str(len(header))})
    assert answer.status_code == 400
    assert "'a'" in answer.json()["error"]


def test_streams_are_for_graphs(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    errors: list[str] = []
    client.start_stream(lambda result, error: errors.append(str(error)))
    a, b = inputs_of(1, 3)
    inputs = [grpcclient.InferInput("a", [1, 4], "FP32"), grpcclient.InferInput("b", [1, 3],
                                                                                 "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    client.async_stream_infer("affine", inputs)
    client.stop_stream()
    assert errors and "plain model" in errors[0]


def test_a_model_that_cannot_load_leaves_the_others(tmp_path: Path) -> None:
    save(unary("x", "y", [2], 1.0), tmp_path / "ok" / "1")
    save(unary("x", "y", [2], 1.0), tmp_path / "layout" / "1")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_config_list": [
        {"config": {"name": "ok", "base_path": "ok"}},
        {"config": {"name": "layout", "base_path": "layout", "layout": "NHWC:NCHW"}},
        {"config": {"name": "empty", "base_path": "nothing_here"}},
    ]}))
    server = start_server(config, all_ready=False)
    try:
        assert httpx.get(f"{server.rest_url}/v2/models/ok/ready").status_code == 200
        assert httpx.get(f"{server.rest_url}/v2/models/layout/ready").status_code == 503
        assert httpx.get(f"{server.rest_url}/v2/models/empty/ready").status_code == 503
    finally:
        server.terminate()
    assert "does not support the key(s) 'layout'" in server.log
    assert "base_path" in server.log and "does not exist" in server.log
