"""Admission control's view (``transport.admission``): inference requests in flight across
the server, the limits, and the requests refused past them, by reason (the limit) and
interface. Rendered at scrape time from the ``Admission`` counts; nothing is counted here."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ovserve.transport.admission import MAX_CONCURRENT, MAX_QUEUED, Admission

__all__ = ["AdmissionView"]


class AdmissionView(Collector):
    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[Metric]:
        in_flight, admitted, rejected = self.admission.snapshot()
        yield GaugeMetricFamily(
            "ovserve_requests_in_flight", "Inference requests in flight across the server (what "
            "--max_concurrent_requests limits)", value=in_flight)
        yield CounterMetricFamily(
            "ovserve_requests_admitted", "Inference requests admitted by admission control",
            value=admitted)
        refused = CounterMetricFamily(
            "ovserve_requests_rejected", "Inference requests refused at once (429 / "
            "RESOURCE_EXHAUSTED) past a limit: reason max_concurrent_requests or "
            "max_queued_requests", labels=["reason", "interface"])
        for (reason, interface), count in sorted(rejected.items()):
            refused.add_metric([reason, interface], count)
        yield refused
        limits = GaugeMetricFamily("ovserve_admission_limit", "The admission limits set (absent: "
                                   "no limit)", labels=["limit"])
        for name, value in ((MAX_CONCURRENT, self.admission.limits.max_concurrent_requests),
                            (MAX_QUEUED, self.admission.limits.max_queued_requests)):
            if value is not None:
                limits.add_metric([name], value)
        yield limits
