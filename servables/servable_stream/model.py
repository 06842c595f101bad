"""The seed's streaming servable: per-prompt text deltas as ``completion`` (BYTES [N]),
then ``token_count`` (INT32 [1]), then ``end_signal`` (empty UINT8).

``execute_unary`` (an ovserve extension) answers unary requests with the whole text, so
both seed clients work against this one servable.
"""

import sys
from pathlib import Path

from pyovms import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_common import bytes_tensor, complete, engine_and_settings, int32_tensor, submit


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.engine, self.settings = engine_and_settings()

    def execute(self, inputs):
        batch = submit(self.engine, self.settings, inputs[0])
        # closing this generator aborts the requests; an engine failure raises here, and the
        # node reports it to the client as an error
        for update in batch.updates():
            yield [bytes_tensor("completion", [d.text if d else "" for d in update])]
        yield [int32_tensor("token_count", sum(batch.completion_tokens))]
        yield [Tensor("end_signal", b"")]

    def execute_unary(self, inputs):
        return complete(self.engine, self.settings, inputs[0])
