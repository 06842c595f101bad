"""The tensor type every layer passes around, its datatype table and the BYTES layout.

``Tensor`` is OVMS's ``pyovms.Tensor`` (src/python/ovms_py_tensor.cpp):

- ``Tensor(name, buffer, shape=None, datatype=None)`` (a handler's tensor) wraps any
  buffer-protocol object without copying and re-exports it as it is: its own format, shape and
  strides, whatever ``shape`` and ``datatype`` say. Those two only override the reported
  attributes; by default ``datatype`` is the KServe name of the buffer's format, or the format
  itself when it has none (numpy strings: ``"<5w"``).
- ``Tensor.from_data(name, data, shape, datatype)`` (a tensor made from a request's raw bytes,
  OVMS's ``_create_from_data``) exposes the bytes typed by ``datatype`` in ``shape`` when the
  datatype is a numeric KServe type that fits them; BYTES and custom datatypes are a 1-D raw
  byte buffer (format ``B``) while ``shape`` and ``datatype`` keep what the request said.

Either way a Tensor exposes a read-only buffer (``bytes(t)``, ``np.array(t)``,
``memoryview(t)``), ``data`` (that memoryview), ``size`` (bytes), ``ptr`` (the data's address)
and ``ref_obj`` (the object whose memory it borrows).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ovserve.errors import InvalidInput
from ovserve.protocol._buffer import ReadOnlyBuffer

# KServe v2 datatype <-> struct format character.
DATATYPE_FORMATS: dict[str, str] = {
    "BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q",
    "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q",
    "FP16": "e", "FP32": "f", "FP64": "d",
}
FORMAT_DATATYPES: dict[str, str] = {fmt: dt for dt, fmt in DATATYPE_FORMATS.items()}
# On 64-bit Linux 'l'/'L' (what numpy reports for int64/uint64) are 8 bytes too. (OVMS maps
# them to INT32/UINT32, which mislabels numpy's int64 arrays; ovserve maps them by size.)
if struct.calcsize("l") == 8:
    FORMAT_DATATYPES.update({"l": "INT64", "L": "UINT64"})
if struct.calcsize("N") == 8:
    FORMAT_DATATYPES.update({"n": "INT64", "N": "UINT64"})
BYTES = "BYTES"
ITEMSIZES: dict[str, int] = {dt: struct.calcsize(fmt) for dt, fmt in DATATYPE_FORMATS.items()}


def datatype_of_format(fmt: str) -> str | None:
    """The datatype of a struct/buffer format (byte-order prefixes ignored), or None."""
    return FORMAT_DATATYPES.get(fmt.lstrip("@=<>!"))


_UNSET: Any = object()


class Tensor(ReadOnlyBuffer):
    """A named tensor over a borrowed buffer (the OVMS ``pyovms.Tensor``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    ref_obj: Any

    def __init__(
        self,
        name: str,
        buffer: Any = _UNSET,
        shape: Sequence[int] | None = None,
        datatype: str | None = None,
        *,
        data: Any = _UNSET,
    ) -> None:
        if buffer is _UNSET:  # OVMS's keyword is ``buffer``; its docs say ``data``
            if data is _UNSET:
                raise TypeError("Tensor() needs a buffer: Tensor(name, buffer)")
            buffer = data
        elif data is not _UNSET:
            raise TypeError("Tensor() got both buffer and data")
        super().__init__(buffer)
        view = memoryview(self)
        self.name = name
        self.ref_obj = buffer
        self.shape = _shape(shape if shape is not None else view.shape or ())
        self.datatype = datatype or datatype_of_format(view.format) or view.format

    @classmethod
    def from_data(cls, name: str, data: Any, shape: Sequence[int], datatype: str) -> Tensor:
        """A tensor over raw bytes that a request (or ovserve) typed by ``datatype``."""
        tensor = cls.__new__(cls)
        nbytes = memoryview(data).nbytes
        dims = _shape(shape)
        fmt = DATATYPE_FORMATS.get(datatype)
        if fmt is not None and math.prod(dims) * ITEMSIZES[datatype] == nbytes:
            ReadOnlyBuffer.__init__(tensor, data, fmt, dims)
        else:  # BYTES, a custom datatype, or a shape that does not describe the bytes
            ReadOnlyBuffer.__init__(tensor, data, "B", (nbytes,))
        tensor.name = name
        tensor.ref_obj = data
        tensor.shape = dims
        tensor.datatype = datatype
        return tensor

    @property
    def data(self) -> memoryview:
        """The tensor's memory, read-only, as its buffer describes it."""
        return memoryview(self)

    @property
    def size(self) -> int:
        """Size of the data in bytes."""
        return memoryview(self).nbytes

    def __repr__(self) -> str:
        return f"Tensor(name={self.name!r}, shape={self.shape}, datatype={self.datatype!r})"


def _shape(dims: Iterable[Any]) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def encode_bytes(items: Iterable[bytes | str]) -> bytes:
    """BYTES layout: each element as a 4-byte little-endian length, then its bytes."""
    out = bytearray()
    for item in items:
        raw = item.encode() if isinstance(item, str) else bytes(item)
        out += struct.pack("<I", len(raw))
        out += raw
    return bytes(out)


def decode_bytes(data: Any) -> list[bytes]:
    """The elements of BYTES data. A ``Tensor`` is read as ``bytes_items`` reads it (its errors
    are the request's: ``InvalidInput`` naming the input); any other buffer must hold
    4-byte-length-prefixed elements, else ``ValueError``."""
    if isinstance(data, Tensor):
        return bytes_items(data)
    return _split_prefixed(data if isinstance(data, bytes) else bytes(data))


def _split_prefixed(raw: bytes) -> list[bytes]:
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ValueError(f"BYTES data truncated in a length prefix at byte {offset}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ValueError(
                f"BYTES element {len(items)} declares {length} bytes but only "
                f"{len(raw) - offset} remain"
            )
        items.append(raw[offset : offset + length])
        offset += length
    return items


def bytes_items(tensor: Tensor) -> list[bytes]:
    """The elements of a BYTES tensor, read as OVMS clients send them:

    - a buffer of 4-byte-length-prefixed elements (tritonclient's layout; gRPC
      ``bytes_contents`` and REST JSON strings always arrive so) whose count is the shape's, or
      whose shape is its byte count (OVMS's clients put a serialized tensor in
      ``_raw_content`` with shape ``[len(raw)]``): those elements;
    - otherwise, with shape ``[byte count]``, ``[1]`` or ``[]``: the whole buffer is one element
      (OVMS's quickstart sends raw text so);
    - anything else is the client's error, naming the input.
    """
    if tensor.datatype != BYTES:
        raise InvalidInput(f"input {tensor.name!r}: expected BYTES (strings), got "
                           f"{tensor.datatype}", tensor.name)
    raw = bytes(tensor)
    count = math.prod(tensor.shape)
    try:
        items = _split_prefixed(raw)
    except ValueError as exc:
        if tensor.shape in ((len(raw),), (1,), ()):
            return [raw]
        raise InvalidInput(
            f"input {tensor.name!r}: BYTES content is neither length-prefixed elements ({exc}) "
            f"nor one raw element (shape [{len(raw)}], [1] or [])", tensor.name) from exc
    if len(items) == count or tensor.shape == (len(raw),):
        return items
    if tensor.shape in ((1,), ()):
        return [raw]
    raise InvalidInput(f"input {tensor.name!r}: BYTES content has {len(items)} length-prefixed "
                       f"element(s) but shape {list(tensor.shape)} needs {count}", tensor.name)


def bytes_tensor(name: str, items: Sequence[bytes | str]) -> Tensor:
    """A BYTES tensor of shape ``[len(items)]``."""
    return Tensor.from_data(name, encode_bytes(items), (len(items),), BYTES)
