"""Small, honest checks that a model produces language: generated text that is not a loop or
noise, and the teacher-forced likelihood of a fixed English paragraph."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

# Plain English a small instruct model predicts well (SmolLM2-135M int8: about 2.3 nats/token
# in order, about 6 with the words reversed)
PARAGRAPH = (
    "The Earth orbits the Sun once a year, and it spins on its axis once a day. Because the axis "
    "is tilted, different parts of the planet receive more sunlight at different times of the "
    "year, which gives us the seasons. When the northern half of the Earth is tilted towards the "
    "Sun, it is summer there and winter in the south."
)


def assert_coherent(text: str, *, min_words: int = 20) -> None:
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= min_words, f"too few words ({len(words)}): {text!r}"
    if len(words) >= 4:
        fourgrams = [tuple(w.lower() for w in words[i : i + 4]) for i in range(len(words) - 3)]
        distinct = len(set(fourgrams)) / len(fourgrams)
        assert distinct >= 0.8, f"repetitive text ({distinct:.2f} distinct 4-grams): {text!r}"
    tokens = text.split()
    wordy = sum(1 for t in tokens if re.search(r"[A-Za-z]{2,}", t)) / len(tokens)
    assert wordy >= 0.8, f"text is mostly not words ({wordy:.2f}): {text!r}"


def mean_nll(model_dir: Path, text: str, properties: dict[str, Any]) -> float:
    """Teacher-forced mean negative log-likelihood (nats per token) of ``text`` under the
    OpenVINO export in ``model_dir``, compiled for CPU with ``properties``. One forward pass and
    no token is chosen, so the CPU's kernels and precision move it by hundredths at most, never
    by a flipped near-tie the way they can move a generation."""
    import openvino as ov
    import openvino_genai as ov_genai

    ids = ov_genai.Tokenizer(str(model_dir)).encode(text).input_ids.data.astype(np.int64)
    count = ids.shape[1]
    core = ov.Core()
    model = core.read_model(model_dir / "openvino_model.xml")
    request = core.compile_model(model, "CPU", properties).create_infer_request()
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "position_ids": np.arange(count, dtype=np.int64)[None],
            "beam_idx": np.zeros(1, dtype=np.int32)}
    names = {name for port in model.inputs for name in port.get_names()}
    logits = request.infer({k: v for k, v in feed.items() if k in names})["logits"]
    scores = np.asarray(logits[0, :-1], dtype=np.float64)  # position i predicts token i + 1
    top = scores.max(axis=-1)
    log_total = np.log(np.exp(scores - top[:, None]).sum(axis=-1)) + top
    nll = log_total - scores[np.arange(count - 1), ids[0, 1:]]
    return float(nll.mean())
