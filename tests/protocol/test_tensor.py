"""pyovms.Tensor: the OVMS Tensor API, datatype table, buffer protocol and BYTES layout."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import (
    DATATYPE_FORMATS,
    bytes_items,
    bytes_tensor,
    decode_bytes,
    encode_bytes,
)
from pyovms import Tensor

NUMPY_TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


@pytest.mark.parametrize("datatype", list(DATATYPE_FORMATS))
def test_datatype_from_buffer_format(datatype: str) -> None:
    array: np.ndarray = np.arange(6).astype(NUMPY_TYPES[datatype]).reshape(2, 3)
    tensor = Tensor("x", array)
    assert tensor.datatype == datatype
    assert tensor.shape == (2, 3)
    assert tensor.size == array.nbytes
    np.testing.assert_array_equal(np.array(tensor), array)
    assert memoryview(tensor).format == array.data.format  # the buffer's own, as OVMS keeps it


def test_native_long_formats_map_to_64_bit() -> None:
    assert Tensor("l", memoryview(struct.pack("2l", 1, 2)).cast("l")).datatype == "INT64"
    assert Tensor("L", memoryview(struct.pack("2L", 1, 2)).cast("L")).datatype == "UINT64"


def test_no_copy_and_read_only() -> None:
    array = np.zeros(4, dtype=np.float32)
    tensor = Tensor("x", array)
    array[0] = 7.0  # the tensor shares the caller's memory
    assert np.array(tensor)[0] == 7.0
    with pytest.raises(TypeError, match="read-only"):
        memoryview(tensor)[0] = 1.0  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="read-only"):
        np.frombuffer(tensor, dtype=np.float32)[0] = 1.0  # type: ignore[call-overload]


def test_bytes_memoryview_and_attributes() -> None:
    tensor = Tensor("greeting", b"hello")
    assert bytes(tensor) == b"hello"
    assert tensor.name == "greeting"
    assert tensor.datatype == "UINT8" and tensor.shape == (5,) and tensor.size == 5
    assert isinstance(tensor.data, memoryview) and tensor.data.tobytes() == b"hello"


def test_empty_bytes_is_uint8_shape_zero() -> None:
    tensor = Tensor("end_signal", b"")
    assert (tensor.datatype, tensor.shape, tensor.size) == ("UINT8", (0,), 0)


def test_shape_and_datatype_override_only_reported_attributes() -> None:
    data = encode_bytes(["a", "bc"])
    tensor = Tensor("p", data, shape=[2], datatype="BYTES")
    assert tensor.shape == (2,) and tensor.datatype == "BYTES"
    assert bytes(tensor) == data  # exposed as raw bytes
    assert decode_bytes(tensor) == [b"a", b"bc"]
    numbers = Tensor("n", struct.pack("<i", 7), shape=[1], datatype="INT32")
    assert memoryview(numbers).format == "B" and memoryview(numbers).shape == (4,)


def test_non_contiguous_input_keeps_values() -> None:
    array = np.arange(6, dtype=np.int32).reshape(2, 3).T
    tensor = Tensor("t", array)
    assert tensor.shape == (3, 2)
    np.testing.assert_array_equal(np.array(tensor), array)


def test_bytes_layout_matches_tritonclient() -> None:
    from tritonclient.utils import serialize_byte_tensor

    items = ["What is", "", "unicode ✓"]
    serialized = serialize_byte_tensor(np.array([s.encode() for s in items], dtype=np.object_))
    expected = serialized.item()  # a 0-d object array holding the bytes
    assert encode_bytes(items) == expected
    assert bytes(bytes_tensor("p", items)) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\x05\x00\x00\x00abc", "declares 5 bytes but only 3 remain"),
     (b"\x01\x00", "truncated in a length prefix")],
)
def test_malformed_bytes_are_named(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_bytes(data)


@pytest.mark.parametrize("datatype", list(DATATYPE_FORMATS))
def test_from_data_types_raw_bytes_by_datatype(datatype: str) -> None:
    array: np.ndarray = np.arange(6).astype(NUMPY_TYPES[datatype]).reshape(2, 3)
    tensor = Tensor.from_data("x", array.tobytes(), [2, 3], datatype)
    assert (tensor.datatype, tensor.shape) == (datatype, (2, 3))
    assert memoryview(tensor).format == DATATYPE_FORMATS[datatype]
    np.testing.assert_array_equal(np.array(tensor), array)


@pytest.mark.parametrize("datatype", ["BYTES", "my_string", "BF16"])
def test_from_data_keeps_bytes_and_custom_types_raw(datatype: str) -> None:
    """OVMS reference.md "Custom types": datatype and shape as sent, a 1-D "B" buffer."""
    data = b"null0terminated0string0"
    tensor = Tensor.from_data("x", data, [3], datatype)
    assert (tensor.datatype, tensor.shape) == (datatype, (3,))
    view = memoryview(tensor)
    assert (view.format, view.shape) == ("B", (23,))
    assert bytes(tensor) == data


def test_buffer_keyword_ptr_and_ref_obj() -> None:
    array = np.arange(4, dtype=np.float32)
    tensor = Tensor("x", buffer=array)
    assert tensor.ref_obj is array
    assert tensor.ptr == array.ctypes.data  # no copy
    assert Tensor("y", data=b"ab").shape == (2,)  # the keyword OVMS's docs use
    with pytest.raises(TypeError):
        Tensor("z")


def test_format_without_kserve_datatype_is_kept() -> None:
    array = np.array(["batch", "of", "strings"])
    tensor = Tensor("s", array)
    assert tensor.datatype == array.data.format == "7w"  # "strings": 7 UCS-4 chars
    assert memoryview(tensor).format == "7w" and memoryview(tensor).itemsize == 28
    np.testing.assert_array_equal(np.frombuffer(tensor, dtype=array.dtype), array)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("raw", "shape", "items"),
    [(encode_bytes(["a", "bc"]), [2], [b"a", b"bc"]),  # tritonclient's layout
     (encode_bytes(["image"]), [len(encode_bytes(["image"]))], [b"image"]),  # OVMS CLIP client
     (b"What is OpenVINO?", [17], [b"What is OpenVINO?"]),  # OVMS quickstart: raw text
     (b"raw text", [1], [b"raw text"]),
     (b"", [0], []),
     (b"", [1], [b""])],
)
def test_bytes_items_reads_what_ovms_clients_send(raw: bytes, shape: list[int],
                                                  items: list[bytes]) -> None:
    assert bytes_items(Tensor.from_data("text", raw, shape, "BYTES")) == items


@pytest.mark.parametrize(
    ("raw", "shape", "message"),
    [(b"not prefixed", [3], "neither length-prefixed"),
     (encode_bytes(["a", "b"]), [3], "has 2 length-prefixed element.*needs 3")],
)
def test_bytes_items_refuses_what_cannot_be_read(raw: bytes, shape: list[int],
                                                 message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        bytes_items(Tensor.from_data("text", raw, shape, "BYTES"))
    assert info.value.param == "text"
