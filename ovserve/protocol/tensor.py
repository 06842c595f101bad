"""The tensor type every layer passes around, its datatype table and the BYTES layout.

``Tensor`` follows the OVMS ``pyovms.Tensor`` contract: ``Tensor(name, data, shape=None,
datatype=None)`` wraps any buffer-protocol object without copying; ``shape`` and ``datatype``
only override the reported attributes. A Tensor itself exposes a read-only buffer, so
``bytes(t)``, ``np.array(t)`` and ``memoryview(t)`` work.
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
# On 64-bit Linux 'l'/'L' (what numpy reports for int64/uint64) are 8 bytes too.
if struct.calcsize("l") == 8:
    FORMAT_DATATYPES.update({"l": "INT64", "L": "UINT64"})
if struct.calcsize("N") == 8:
    FORMAT_DATATYPES.update({"n": "INT64", "N": "UINT64"})
BYTES = "BYTES"
ITEMSIZES: dict[str, int] = {dt: struct.calcsize(fmt) for dt, fmt in DATATYPE_FORMATS.items()}


def datatype_of_format(fmt: str) -> str | None:
    """The datatype of a struct/buffer format (byte-order prefixes ignored), or None."""
    return FORMAT_DATATYPES.get(fmt.lstrip("@=<>!"))


class Tensor(ReadOnlyBuffer):
    """A named tensor over a borrowed buffer (the OVMS ``pyovms.Tensor``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __init__(
        self,
        name: str,
        data: Any,
        shape: Sequence[int] | None = None,
        datatype: str | None = None,
    ) -> None:
        view = memoryview(data)
        if datatype is None:
            datatype = datatype_of_format(view.format) or view.format
        self.name = name
        self.datatype = datatype
        self.shape = tuple(int(d) for d in (shape if shape is not None else view.shape or ()))
        if not view.c_contiguous:  # only non-contiguous arrays are copied
            data = view.tobytes()
        fmt = DATATYPE_FORMATS.get(datatype)
        if fmt is not None and math.prod(self.shape) * ITEMSIZES[datatype] == view.nbytes:
            super().__init__(data, fmt, self.shape)
        else:  # BYTES, or a shape that does not describe the buffer: expose raw bytes
            super().__init__(data, "B", (view.nbytes,))

    @property
    def data(self) -> memoryview:
        """The tensor's memory, read-only, typed by its datatype where that is numeric."""
        return memoryview(self)

    @property
    def size(self) -> int:
        """Size of the data in bytes."""
        return memoryview(self).nbytes

    def __repr__(self) -> str:
        return f"Tensor(name={self.name!r}, shape={self.shape}, datatype={self.datatype!r})"


def encode_bytes(items: Iterable[bytes | str]) -> bytes:
    """BYTES layout: each element as a 4-byte little-endian length, then its bytes."""
    out = bytearray()
    for item in items:
        raw = item.encode() if isinstance(item, str) else bytes(item)
        out += struct.pack("<I", len(raw))
        out += raw
    return bytes(out)


def decode_bytes(data: Any) -> list[bytes]:
    """Split a BYTES buffer into its elements; raise ``ValueError`` if it is malformed. A
    ``Tensor`` of another datatype (a client sent numbers where a handler reads strings) is the
    request's fault: ``InvalidInput`` naming the input."""
    if isinstance(data, Tensor) and data.datatype != BYTES:
        raise InvalidInput(f"input {data.name!r}: expected BYTES (strings), got {data.datatype}",
                           data.name)
    raw = memoryview(data).cast("B")
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
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    return items


def bytes_tensor(name: str, items: Sequence[bytes | str]) -> Tensor:
    """A BYTES tensor of shape ``[len(items)]``."""
    return Tensor(name, encode_bytes(items), shape=(len(items),), datatype=BYTES)
