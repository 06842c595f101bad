"""The seed's approach, for comparison only: optimum-intel ``generate`` per request.

Each prompt gets a thread running ``OVModelForCausalLM.generate`` on its own clone of the
model (the compiled model is shared, the infer request and KV cache are not) with a
``TextIteratorStreamer``; nothing is batched across requests. Same I/O contract as
servables/servable_stream: ``completion`` deltas, then ``token_count``, then ``end_signal``.
"""

from __future__ import annotations

import copy
import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ovserve.protocol.tensor import bytes_tensor
from pyovms import Tensor

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "servables"))
from llm_common import int32_tensor, prompts_of  # type: ignore[import-not-found]  # noqa: E402

DEFAULT_MODEL = REPO / "models" / "smollm2-135m-instruct"


class OvmsPythonModel:
    def initialize(self, kwargs: dict[str, Any]) -> None:
        from optimum.intel import OVModelForCausalLM
        from transformers import AutoTokenizer

        path = os.environ.get("OVSERVE_MODEL_PATH") or str(DEFAULT_MODEL)
        self.model = OVModelForCausalLM.from_pretrained(path, compile=True)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.max_tokens = int(os.environ.get("OVSERVE_MAX_TOKENS", "256"))

    def _clone(self) -> Any:
        clone = copy.copy(self.model)
        clone.request = self.model.request.get_compiled_model().create_infer_request()
        return clone

    def _generate(self, index: int, prompt: str, out: queue.Queue[tuple[int, Any]]) -> None:
        from transformers import TextIteratorStreamer

        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                  tokenize=False, add_generation_prompt=True)
        inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            result["ids"] = self._clone().generate(**inputs, max_new_tokens=self.max_tokens,
                                                   do_sample=False, streamer=streamer)

        worker = threading.Thread(target=run)
        worker.start()
        for piece in streamer:
            if piece:
                out.put((index, piece))
        worker.join()
        out.put((index, int(result["ids"].shape[-1] - inputs["input_ids"].shape[-1])))

    def execute(self, inputs: list[Tensor]) -> Iterator[list[Tensor]]:
        prompts = prompts_of(inputs[0])
        out: queue.Queue[tuple[int, Any]] = queue.Queue()
        for index, prompt in enumerate(prompts):
            threading.Thread(target=self._generate, args=(index, prompt, out)).start()
        counts: dict[int, int] = {}
        while len(counts) < len(prompts):
            index, item = out.get()
            if isinstance(item, int):
                counts[index] = item
                continue
            texts = [""] * len(prompts)
            texts[index] = item
            yield [bytes_tensor("completion", texts)]
        yield [int32_tensor("token_count", sum(counts.values()))]
        yield [Tensor("end_signal", b"")]
