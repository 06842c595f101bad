"""Helpers shared by the seed servables' handlers (imported from the handler's folder)."""

import os
import struct
from pathlib import Path

from ovserve.engine import GenerationLimits, SamplingParams, shared_engine
from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import bytes_tensor, decode_bytes
from pyovms import Tensor

BUILT_IN_MODEL = Path(__file__).resolve().parent.parent / "models" / "smollm2-135m-instruct"
OVMS_DEMO_MODEL = Path("/model")  # where OVMS's demo mounts the model (docker run -v ...:/model)


def default_model():
    """$OVSERVE_MODEL_PATH, else a model mounted at /model as OVMS's demo mounts it, else the
    built-in one."""
    if os.environ.get("OVSERVE_MODEL_PATH"):
        return os.environ["OVSERVE_MODEL_PATH"]
    if (OVMS_DEMO_MODEL / "openvino_model.xml").is_file():
        return str(OVMS_DEMO_MODEL)
    return str(BUILT_IN_MODEL)


def engine_and_settings():
    """The shared engine (default_model()), this servable's
    length default (OVSERVE_MAX_TOKENS, default 256; ovserve.engine.limits decides the rest)
    and sampling (OVSERVE_IGNORE_EOS=1: always generate that many tokens, for load tests)."""
    path = default_model()
    device = os.environ.get("OVSERVE_DEVICE", "CPU")
    limits = GenerationLimits(default_max_tokens=int(os.environ.get("OVSERVE_MAX_TOKENS", "256")))
    params = SamplingParams(ignore_eos=os.environ.get("OVSERVE_IGNORE_EOS", "0") == "1")
    return shared_engine(path, device=device), Settings(limits, params)


class Settings:
    def __init__(self, limits, params):
        self.limits, self.params = limits, params


def prompts_of(tensor):
    """The strings of a BYTES tensor (numbers or bytes that are not UTF-8 text are the
    client's mistake: InvalidInput, answered 400 / INVALID_ARGUMENT naming the input)."""
    prompts = []
    for i, item in enumerate(decode_bytes(tensor)):
        try:
            prompts.append(item.decode())
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input {tensor.name!r}: element {i} is not UTF-8 text "
                               f"(byte {exc.start})", tensor.name) from None
    return prompts


def submit(engine, settings, prompts_tensor):
    """Every prompt of the tensor (chat template applied) queued at once, read as one batch.
    Its updates raise the engine's error when the engine fails a request."""
    return engine.submit_batch([engine.prepare(p, settings.params, settings.limits)
                                for p in prompts_of(prompts_tensor)])


def int32_tensor(name, value):
    return Tensor(name, struct.pack("<i", value), shape=[1], datatype="INT32")


def complete(engine, settings, prompts_tensor):
    """Unary answer: every prompt's whole text, and the number of tokens generated."""
    batch = submit(engine, settings, prompts_tensor)
    texts = [""] * len(batch.generations)
    for update in batch.updates():
        for i, delta in enumerate(update):
            if delta is not None:
                texts[i] += delta.text
    return [bytes_tensor("completion", texts),
            int32_tensor("token_count", sum(batch.completion_tokens))]
