"""Reading /metrics in tests: samples by name and labels, exactly as exposed (Prometheus keeps
a counter's sample names as written: OVMS's have no ``_total``); OpenMetrics' exemplars through
prometheus-client's strict parser."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families

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


def families(text: str) -> list[Any]:
    """An OpenMetrics exposition's families, through prometheus-client's strict parser."""
    return list(text_string_to_metric_families(text))  # type: ignore[no-untyped-call]


OPENMETRICS = ("application/openmetrics-text;version=1.0.0;q=0.5,"
               "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")  # what Prometheus sends


def exemplars(text: str, family: str) -> list[tuple[dict[str, str], float, Any, float]]:
    """``family``'s bucket exemplars: (series labels, the bucket's le, exemplar, the previous
    le of the same series), from the strict OpenMetrics parser."""
    found = []
    for metric in families(text):
        if metric.name != family:
            continue
        previous: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in metric.samples:
            if not sample.name.endswith("_bucket"):
                continue
            series = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            le = float(sample.labels["le"])
            if sample.exemplar is not None:
                found.append((dict(series), le, sample.exemplar, previous.get(series, 0.0)))
            previous[series] = le
    return found


def count(text: str, family: str) -> float:
    """``family``'s observations, summed over its series."""
    return float(sum(s.value for m in families(text) if m.name == family
                     for s in m.samples if s.name == f"{family}_count"))
