"""Only for the C extension behind pyovms.Tensor's buffer protocol; metadata is in pyproject."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ovserve.protocol._buffer", ["ovserve/protocol/_buffer.c"])])
