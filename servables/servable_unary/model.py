"""The seed's unary servable: N prompts in, N completions and the token count out.

All prompts go to the shared continuous-batching engine at once, so they are generated
together with each other and with every other request in flight.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_common import bytes_tensor, engine_and_params, int32_tensor, prompts_of


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.engine, self.params = engine_and_params()

    def execute(self, inputs):
        batch = self.engine.submit_batch(prompts_of(inputs[0]), self.params)
        texts = [""] * len(batch.generations)
        for update in batch.updates():
            for i, delta in enumerate(update):
                if delta is not None:
                    texts[i] += delta.text
        return [bytes_tensor("completion", texts),
                int32_tensor("token_count", sum(batch.completion_tokens))]
