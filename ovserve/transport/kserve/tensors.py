"""KServe v2 tensors shared by the gRPC and REST codecs: checks and conversions.

As OVMS decides (src/kfs_frontend/kfs_graph_executor_impl.cpp, docs/python_support/reference.md):

- raw contents (gRPC ``raw_input_contents``, the REST binary extension) of a numeric KServe
  datatype must be exactly the shape's size; BYTES and custom datatypes (any other string) are
  handed over as they came, whatever the shape says (``Tensor.from_data``: a 1-D byte buffer,
  shape and datatype as sent). Nodes that read strings read them with ``bytes_items``.
- typed contents (gRPC ``contents``, REST JSON ``data``) must be a KServe datatype, as many
  values as the shape holds; BYTES values become 4-byte-length-prefixed elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import (
    BYTES,
    DATATYPE_FORMATS,
    ITEMSIZES,
    Tensor,
    bytes_items,
    encode_bytes,
)

DATATYPES = (*DATATYPE_FORMATS, BYTES)
NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


def check_header(servable: str, name: str, datatype: str, shape: Sequence[int]) -> None:
    if not datatype:
        raise InvalidInput(f"servable {servable}: input {name!r}: datatype is empty", name)
    if any(int(d) < 0 for d in shape):
        raise InvalidInput(
            f"servable {servable}: input {name!r}: shape {list(shape)} has a negative dimension",
            name)


def tensor_from_raw(
    servable: str, name: str, datatype: str, shape: Sequence[int], raw: bytes
) -> Tensor:
    """A tensor from raw bytes (gRPC raw_input_contents, REST binary extension)."""
    check_header(servable, name, datatype, shape)
    itemsize = ITEMSIZES.get(datatype)
    if itemsize is not None:
        expected = math.prod(shape) * itemsize
        if len(raw) != expected:
            raise InvalidInput(
                f"servable {servable}: input {name!r}: raw content has {len(raw)} bytes but "
                f"shape {list(shape)} of {datatype} needs {expected}", name)
    return Tensor.from_data(name, raw, shape, datatype)


def _flatten(values: Any) -> list[Any]:
    if isinstance(values, list | tuple):
        out: list[Any] = []
        for value in values:
            out.extend(_flatten(value))
        return out
    return [values]


def tensor_from_values(
    servable: str, name: str, datatype: str, shape: Sequence[int], values: Any
) -> Tensor:
    """A tensor from typed values (gRPC ``contents``, REST JSON ``data``)."""
    check_header(servable, name, datatype, shape)
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"servable {servable}: input {name!r}: datatype {datatype!r} is not a KServe "
            f"datatype ({', '.join(DATATYPES)}); custom datatypes go in raw contents only", name)
    flat = _flatten(values)
    count = math.prod(shape)
    if len(flat) != count:
        raise InvalidInput(
            f"servable {servable}: input {name!r}: {len(flat)} value(s) given but shape "
            f"{list(shape)} needs {count}"
        )
    if datatype == BYTES:
        if not all(isinstance(v, str | bytes) for v in flat):
            raise InvalidInput(f"servable {servable}: input {name!r}: BYTES data must be strings")
        try:
            raw = encode_bytes(flat)
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") is not text
            raise InvalidInput(f"servable {servable}: input {name!r}: BYTES data is not valid "
                               f"Unicode at position {exc.start} of an element") from exc
        return Tensor.from_data(name, raw, shape, BYTES)
    try:
        if datatype == "BOOL" and not all(isinstance(v, bool) for v in flat):
            raise TypeError("BOOL data must be true/false")
        array = np.array(flat, dtype=NUMPY_DTYPES[datatype])
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"servable {servable}: input {name!r}: data does not fit {datatype}: {exc}"
        ) from exc
    return Tensor.from_data(name, array.tobytes(), shape, datatype)


def output_raw(tensor: Tensor) -> bytes:
    return bytes(tensor)


def output_values(tensor: Tensor) -> list[Any]:
    """JSON-able flat values: BYTES as strings, numbers as numbers."""
    if tensor.datatype == BYTES:
        return [item.decode("utf-8", errors="replace") for item in bytes_items(tensor)]
    dtype = NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None:
        return list(bytes(tensor))
    values: list[Any] = np.frombuffer(bytes(tensor), dtype=dtype).tolist()
    return values
