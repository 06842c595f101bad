"""Which of OVMS's ``ovms_*`` metric families are on, by OVMS's rules.

OVMS (src/metrics/metric_config.cpp, src/config.cpp, src/modelmanager.cpp at 2026.3):

- Off unless asked: ``--metrics_enable`` on the command line, or config.json's
  ``"monitoring": {"metrics": {"enable": true}}``.
- On with no ``metrics_list``: the default families (all but ``ovms_infer_req_queue_size`` and
  ``ovms_infer_req_active``). With a list: exactly the families listed (defaults not added);
  a name that is not a family is a start-up error.
- ``--metrics_list`` without ``--metrics_enable`` is an error, and so is ``--metrics_enable``
  beside a ``monitoring`` block (metrics configured twice), and metrics without a REST port.
- A ``monitoring`` block: ``metrics`` required, ``enable`` required in it, a boolean;
  ``metrics_list`` an array of strings; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import OvserveError

__all__ = ["ADDITIONAL", "DEFAULTS", "FAMILIES", "MetricsConfigError", "OvmsMetricsConfig"]

#: OVMS's default families, in the order of its docs/metrics.md
DEFAULTS = ("ovms_streams", "ovms_current_requests", "ovms_current_graphs",
            "ovms_requests_success", "ovms_requests_fail", "ovms_requests_accepted",
            "ovms_requests_rejected", "ovms_responses", "ovms_request_time_us",
            "ovms_inference_time_us", "ovms_wait_for_infer_req_time_us", "ovms_graph_error",
            "ovms_graph_processing_time_us")
#: on only when listed
ADDITIONAL = ("ovms_infer_req_queue_size", "ovms_infer_req_active")
FAMILIES = DEFAULTS + ADDITIONAL


class MetricsConfigError(OvserveError):
    """OVMS's metrics settings do not make a valid configuration (the server does not start,
    as OVMS does not)."""


@dataclass(frozen=True)
class OvmsMetricsConfig:
    """The ``ovms_*`` families served at /metrics (empty: none, OVMS's default)."""

    families: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self.families)

    def on(self, family: str) -> bool:
        return family in self.families

    @classmethod
    def of(cls, enable: bool, metrics_list: Sequence[str] = ()) -> OvmsMetricsConfig:
        """The families ``enable`` and ``metrics_list`` select (``MetricsConfigError`` for an
        unknown name)."""
        unknown = [name for name in metrics_list if name not in FAMILIES]
        if unknown:
            raise MetricsConfigError(f"metrics_list: {unknown[0]!r} is not one of OVMS's "
                                     f"metric families ({', '.join(FAMILIES)})")
        if not enable:
            return cls()
        return cls(frozenset(metrics_list) if metrics_list else frozenset(DEFAULTS))

    @classmethod
    def from_block(cls, block: Any) -> OvmsMetricsConfig:
        """A config.json ``monitoring`` block, checked as OVMS's schema checks it."""
        if not isinstance(block, Mapping) or set(block) != {"metrics"}:
            raise MetricsConfigError('monitoring: must be {"metrics": {"enable": ..., '
                                     '"metrics_list": [...]}}')
        metrics = block["metrics"]
        if not isinstance(metrics, Mapping) or not isinstance(metrics.get("enable"), bool):
            raise MetricsConfigError("monitoring.metrics: needs \"enable\": true or false")
        extra = set(metrics) - {"enable", "metrics_list"}
        if extra:
            raise MetricsConfigError(f"monitoring.metrics: unknown key {sorted(extra)[0]!r} "
                                     "(keys: enable, metrics_list)")
        names = metrics.get("metrics_list", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MetricsConfigError("monitoring.metrics.metrics_list: a list of metric names")
        return cls.of(metrics["enable"], names)

    @classmethod
    def resolve(cls, enable: bool, metrics_list: Sequence[str], config_path: Path | None,
                rest_port: int | None) -> OvmsMetricsConfig:
        """The server's families: from the command line (``--metrics_enable``,
        ``--metrics_list``) or config.json's ``monitoring`` block, never both."""
        if metrics_list and not enable:
            raise MetricsConfigError("--metrics_list needs --metrics_enable (as in OVMS)")
        block = _monitoring(config_path)
        if block is not None and enable:
            raise MetricsConfigError(f"metrics are configured twice: --metrics_enable and the "
                                     f"monitoring block of {config_path} (OVMS refuses this "
                                     "too); keep one")
        config = cls.from_block(block) if block is not None else cls.of(enable, metrics_list)
        if config.enabled and rest_port is None:
            raise MetricsConfigError("metrics are served on the REST port: give --rest_port "
                                     "(as OVMS requires)")
        return config


def _monitoring(config_path: Path | None) -> Any:
    """config.json's ``monitoring`` block, or None (no file, no block)."""
    if config_path is None or not config_path.is_file():
        return None
    try:
        data = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None  # the config loader reports a broken file
    return data.get("monitoring") if isinstance(data, dict) else None
