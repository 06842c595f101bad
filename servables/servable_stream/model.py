"""The seed's streaming servable: per-prompt text deltas as ``completion`` (BYTES [N]),
then ``token_count`` (INT32 [1]), then ``end_signal`` (empty UINT8).

``execute_unary`` (an ovserve extension) answers unary requests with the whole text, so
both seed clients work against this one servable.
"""

import sys
from pathlib import Path

from pyovms import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_common import bytes_tensor, complete, engine_and_params, int32_tensor, prompts_of


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.engine, self.params = engine_and_params()

    def execute(self, inputs):
        batch = self.engine.submit_batch(prompts_of(inputs[0]), self.params)
        for update in batch.updates():  # closing this generator aborts the requests
            yield [bytes_tensor("completion", [d.text if d else "" for d in update])]
        yield [int32_tensor("token_count", sum(batch.completion_tokens))]
        yield [Tensor("end_signal", b"")]

    def execute_unary(self, inputs):
        return complete(self.engine, self.params, inputs[0])
