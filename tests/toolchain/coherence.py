"""A small, honest check that generated text is language rather than a loop or noise."""

from __future__ import annotations

import re


def assert_coherent(text: str, *, min_words: int = 20) -> None:
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= min_words, f"too few words ({len(words)}): {text!r}"
    fourgrams = [tuple(w.lower() for w in words[i : i + 4]) for i in range(len(words) - 3)]
    distinct = len(set(fourgrams)) / len(fourgrams)
    assert distinct >= 0.8, f"repetitive text ({distinct:.2f} distinct 4-grams): {text!r}"
    tokens = text.split()
    wordy = sum(1 for t in tokens if re.search(r"[A-Za-z]{2,}", t)) / len(tokens)
    assert wordy >= 0.8, f"text is mostly not words ({wordy:.2f}): {text!r}"
