"""The seed's unary servable: N prompts in, N completions and the token count out.

All prompts go to the shared continuous-batching engine at once, so they are generated
together with each other and with every other request in flight.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_common import complete, engine_and_settings


class OvmsPythonModel:
    def initialize(self, kwargs):
        self.engine, self.settings = engine_and_settings()

    def execute(self, inputs):
        return complete(self.engine, self.settings, inputs[0])
