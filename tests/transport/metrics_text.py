"""Reading /metrics in tests: samples by name and labels, exactly as exposed (Prometheus keeps
a counter's sample names as written: OVMS's have no ``_total``)."""

from __future__ import annotations

import re

_SAMPLE = re.compile(r"^([^{\s]+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample: (name, labels, value)."""
    result = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(match.group(2) or "")}
        result.append((match.group(1), labels, float(match.group(3))))
    return result


def value(text: str, metric: str, **labels: str) -> float:
    """The sum of the samples of ``metric`` whose labels include ``labels``."""
    return sum(v for n, got, v in samples(text)
               if n == metric and all(got.get(k) == w for k, w in labels.items()))


def names(text: str) -> set[str]:
    """The sample names present (histograms as _bucket, _sum, _count)."""
    return {n for n, _, _ in samples(text)}


def label_sets(text: str, name: str) -> list[dict[str, str]]:
    return [labels for n, labels, _ in samples(text) if n == name]
