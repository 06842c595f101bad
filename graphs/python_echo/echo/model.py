"""Yields the words of each request back one at a time (an OVMS Python node)."""

from pyovms import Tensor


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.output = kwargs["output_names"][0]

    def execute(self, inputs):
        for word in bytes(inputs[0]).decode().split():
            yield [Tensor(self.output, word.encode())]
