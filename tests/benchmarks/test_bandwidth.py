"""benchmarks/bandwidth.py: the machine's aggregate memory read bandwidth."""

from __future__ import annotations

import math
import time

from benchmarks.bandwidth import measure


def test_a_small_measurement_is_a_positive_finite_rate_and_quick() -> None:
    """Two processes over 4 MiB each (in cache: the figure itself means nothing here, only that
    the machinery gives one promptly)."""
    began = time.monotonic()
    found = measure(processes=2, mib=4, repeats=2)
    assert time.monotonic() - began < 30
    assert math.isfinite(found.gbps) and found.gbps > 0
    assert found.processes == 2 and found.mib_per_process == 4 and found.repeats == 2
    assert len(found.per_repeat_gbps) == 2 and max(found.per_repeat_gbps) == found.gbps
    assert found.as_dict()["gbps"] == found.gbps
