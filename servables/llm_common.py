"""Helpers shared by the seed servables' handlers (imported from the handler's folder)."""

import os
import struct
from pathlib import Path

from ovserve.engine import SamplingParams, shared_engine
from ovserve.protocol.tensor import bytes_tensor, decode_bytes
from pyovms import Tensor

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "smollm2-135m-instruct"


def engine_and_params():
    """The shared engine (OVSERVE_MODEL_PATH, default the built-in model) and sampling."""
    path = os.environ.get("OVSERVE_MODEL_PATH") or str(DEFAULT_MODEL)
    device = os.environ.get("OVSERVE_DEVICE", "CPU")
    params = SamplingParams(max_tokens=int(os.environ.get("OVSERVE_MAX_TOKENS", "256")))
    return shared_engine(path, device=device), params


def prompts_of(tensor):
    """The strings of a BYTES tensor."""
    return [item.decode() for item in decode_bytes(tensor)]


def int32_tensor(name, value):
    return Tensor(name, struct.pack("<i", value), shape=[1], datatype="INT32")


def complete(engine, params, prompts_tensor):
    """Unary answer: every prompt's whole text, and the number of tokens generated."""
    batch = engine.submit_batch(prompts_of(prompts_tensor), params)
    texts = [""] * len(batch.generations)
    for update in batch.updates():
        for i, delta in enumerate(update):
            if delta is not None:
                texts[i] += delta.text
    return [bytes_tensor("completion", texts),
            int32_tensor("token_count", sum(batch.completion_tokens))]
