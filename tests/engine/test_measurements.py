"""The engine's measurements on their own: distributions read at any view's bounds, a
finished request's times split into queue, prefill and decode, and the engine process's
report of which requests a step scheduled (from openvino-genai's count alone)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ovserve.engine.measurements import (
    ITL_BUCKETS,
    TIME_BOUNDS,
    Distribution,
    EngineMeasurements,
    FinishedRequest,
)
from ovserve.engine.process import EngineLoop, _Slot


def test_each_bucket_carries_the_latest_exemplar_among_its_observations() -> None:
    d = Distribution(TIME_BOUNDS)
    d.observe(0.012, {"request_id": "a"})
    d.observe(0.02, {"request_id": "b"})  # same 0.025 bucket, later: it wins
    d.observe(0.015)  # no labels: leaves the bucket's exemplar alone
    d.observe(0.3, {"request_id": "c"})
    d.observe(5000.0, {"request_id": "d"})  # above every bound: +Inf's
    got = {b: (c, e.labels["request_id"] if e else None, e.value if e else None)
           for b, c, e in d.buckets_with_exemplars([0.01, 0.025, 0.3, 80.0])}
    assert got == {0.01: (0, None, None), 0.025: (3, "b", 0.02), 0.3: (4, "c", 0.3),
                   80.0: (4, None, None), float("inf"): (5, "d", 5000.0)}
    # a coarser view's bucket takes the latest of the finer slots it spans
    (first, _) = d.buckets_with_exemplars([0.3])
    assert first[2] is not None and first[2].labels == {"request_id": "c"}


def test_merged_distributions_keep_the_later_exemplar_per_bucket() -> None:
    older, newer, plain = (Distribution(TIME_BOUNDS) for _ in range(3))
    older.observe(0.02, {"request_id": "old"})
    older.observe(0.3, {"request_id": "only"})
    newer.observe(0.02, {"request_id": "new"})
    plain.observe(0.02)
    merged = Distribution(TIME_BOUNDS)
    for d in (plain, newer, older):  # merge order does not decide: the time does
        merged.merge(d)
    ((_, count, latest), (_, _, other), _) = merged.buckets_with_exemplars([0.025, 0.3])
    assert count == 3 and latest is not None and latest.labels == {"request_id": "new"}
    assert other is not None and other.labels == {"request_id": "only"}
    assert merged.count == 4 and merged.total == pytest.approx(0.36)


def test_a_distribution_gives_cumulative_counts_at_any_of_its_bounds() -> None:
    d = Distribution(TIME_BOUNDS)
    for v in (0.005, 0.01, 0.012, 0.3, 100.0, 5000.0):
        d.observe(v)
    assert d.buckets([0.01, 0.025, 0.3, 80.0]) == [
        (0.01, 2), (0.025, 3), (0.3, 4), (80.0, 4), (float("inf"), 6)]
    assert d.count == 6 and d.total == pytest.approx(5100.327)
    assert d.buckets(ITL_BUCKETS)[-1] == (float("inf"), 6)
    with pytest.raises(ValueError, match="not a bound"):
        d.buckets([0.0123])


def test_a_finished_request_splits_into_queue_prefill_and_decode() -> None:
    m = EngineMeasurements()
    m.first_token(arrived=10.0, at=10.5, prompt_tokens=7)
    m.tokens(1, None)
    m.tokens(2, 0.25)
    m.finish(FinishedRequest(arrived=10.0, scheduled=10.2, first_token=10.5, last_token=11.5,
                             finished=11.6, prompt_tokens=7, generation_tokens=3,
                             max_tokens=16, finish_reason="length"))
    m.finish(FinishedRequest(10.0, None, None, None, 10.1, 7, 0, 16, "abort"))
    snap = m.snapshot()
    assert (snap.prompt_tokens, snap.generation_tokens) == (7, 3)
    assert snap.finished == {"length": 1, "abort": 1}
    assert snap.time_to_first_token.total == pytest.approx(0.5)
    assert snap.inter_token_latency.count == 1
    assert snap.queue.total == pytest.approx(0.2) and snap.queue.count == 1  # not the abort
    assert snap.prefill.total == pytest.approx(0.3)
    assert snap.decode.total == pytest.approx(1.0)
    assert snap.inference.total == pytest.approx(1.3)
    assert snap.e2e.total == pytest.approx(1.6)
    assert snap.time_per_output_token.total == pytest.approx(0.5)
    assert snap.request_max_tokens.total == 16


class _Pipeline:
    def __init__(self) -> None:
        self.scheduled = 0

    def get_tokenizer(self) -> Any:
        return None

    def get_metrics(self) -> Any:
        return SimpleNamespace(scheduled_requests=self.scheduled)


def test_the_newly_scheduled_are_the_first_waiting_up_to_the_count() -> None:
    pipeline = _Pipeline()
    loop = EngineLoop(pipeline, conn=None)  # type: ignore[arg-type]
    for request_id in range(5):
        loop.active[request_id] = _Slot(handle=None)
    pipeline.scheduled = 2  # the first step takes 2 of the 5
    assert loop._newly_scheduled(pipeline.scheduled) == (0, 1)
    assert loop._newly_scheduled(pipeline.scheduled) == ()  # the same 2 again: nothing new
    del loop.active[0]  # one finished: the next step takes the next one in
    assert loop._newly_scheduled(pipeline.scheduled) == (2,)
    pipeline.scheduled = 4  # room for all
    assert loop._newly_scheduled(pipeline.scheduled) == (3, 4)
