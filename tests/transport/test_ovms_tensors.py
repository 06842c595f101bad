"""Tensors as OVMS clients send them (OVMS docs/python_support/reference.md, its Python demos'
clients): raw BYTES without length prefixes, serialized BYTES with the byte count as shape,
custom datatypes in raw contents; over gRPC with tritonclient and REST's binary extension."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from tests.transport.server import Server


def test_grpc_raw_text_with_the_byte_count_as_shape(server: Server) -> None:
    """The quickstart's client: ``InferInput("text", [len(data)], "BYTES")`` and
    ``_raw_content = data``."""
    data = b"What is OpenVINO?"
    text = grpcclient.InferInput("text", [len(data)], "BYTES")
    text._raw_content = data
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        result = client.infer("echo", [text])
    assert result.as_numpy("upper").tolist() == [b"WHAT IS OPENVINO?"]
    assert result.as_numpy("count").tolist() == [1]


def test_grpc_serialized_bytes_with_the_byte_count_as_shape(server: Server) -> None:
    """The CLIP demo's client: a serialized BYTES tensor as raw content, shape its length."""
    serialized = serialize_byte_tensor(np.array("a photo", dtype=np.object_)).item()
    labels = grpcclient.InferInput("text", [len(serialized)], "BYTES")
    labels._raw_content = serialized
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        result = client.infer("echo", [labels])
    assert result.as_numpy("upper").tolist() == [b"A PHOTO"]


def test_grpc_custom_datatype_reaches_the_handler_as_sent(server: Server) -> None:
    """reference.md "Custom types": the handler gets the datatype and shape as sent over a
    raw byte buffer (the echo handler reads a non-BYTES tensor as one text)."""
    custom = grpcclient.InferInput("text", [3], "my_string")
    custom._raw_content = b"abc"
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        result = client.infer("echo", [custom])
    assert result.as_numpy("upper").tolist() == [b"ABC"]


def test_rest_binary_raw_text_and_json_custom_datatype(server: Server) -> None:
    data = b"raw text"
    with httpclient.InferenceServerClient(server.rest_url.removeprefix("http://")) as client:
        text = httpclient.InferInput("text", [len(data)], "BYTES")
        text._raw_data = data
        text._parameters = {"binary_data_size": len(data)}
        result = client.infer("echo", [text])
        assert result.as_numpy("upper").tolist() == [b"RAW TEXT"]
        typed = httpclient.InferInput("text", [1], "my_string")
        typed._data = ["x"]
        with pytest.raises(InferenceServerException, match="custom datatypes go in raw "
                           "contents only"):
            client.infer("echo", [typed])
