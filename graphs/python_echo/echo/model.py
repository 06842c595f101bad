"""Yields the words of each request back one at a time (an OVMS Python node).

Self-contained on purpose (only ``pyovms``), so the same file runs under OVMS too; handlers
that only run on ovserve can use ``ovserve.protocol.tensor.decode_bytes``/``bytes_tensor``.
"""

import struct

from pyovms import Tensor


def texts(tensor):
    """Strings of a BYTES tensor (4-byte little-endian length + bytes each), or its raw text."""
    raw = bytes(tensor)
    if tensor.datatype != "BYTES":
        return [raw.decode()]
    out, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    return out


def bytes_tensor(name, text):
    data = text.encode()
    return Tensor(name, struct.pack("<I", len(data)) + data, shape=[1], datatype="BYTES")


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.output = kwargs["output_names"][0]

    def execute(self, inputs):
        for text in texts(inputs[0]):
            for word in text.split():
                yield [bytes_tensor(self.output, word)]
