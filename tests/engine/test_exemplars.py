"""Exemplar labels: set per request context, merged, and cut to OpenMetrics' 128 characters
with the trace id kept first."""

from __future__ import annotations

import asyncio

from ovserve.engine import exemplars


def test_labels_fit_openmetrics_limit_trace_id_first() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert exemplars.fit({"request_id": "r" * 78, "trace_id": trace}) == {
        "trace_id": trace, "request_id": "r" * 78}
    # 79 characters no longer fit beside the trace id (40 + 10 + 79 > 128)
    assert exemplars.fit({"request_id": "r" * 79, "trace_id": trace}) == {"trace_id": trace}
    # alone, a request id fits up to 118 characters
    assert exemplars.fit({"request_id": "r" * 118}) == {"request_id": "r" * 118}
    assert exemplars.fit({"request_id": "r" * 119}) == {}
    assert exemplars.fit({"trace_id": "", "request_id": "x"}) == {"request_id": "x"}


async def test_tags_belong_to_their_request_context() -> None:
    async def request(request_id: str, trace_id: str) -> dict[str, str]:
        with exemplars.tagged(request_id=request_id):
            await asyncio.sleep(0)
            with exemplars.tagged(trace_id=trace_id):
                await asyncio.sleep(0)
                return dict(exemplars.current())

    one, two = await asyncio.gather(request("one", "1" * 32), request("two", "2" * 32))
    assert one == {"trace_id": "1" * 32, "request_id": "one"}
    assert two == {"trace_id": "2" * 32, "request_id": "two"}
    assert dict(exemplars.current()) == {}

    async def call() -> dict[str, str]:  # a gRPC call's task: tagged until it ends
        exemplars.tag(request_id="grpc-1")
        return dict(exemplars.current())

    assert await asyncio.create_task(call()) == {"request_id": "grpc-1"}
    assert dict(exemplars.current()) == {}
