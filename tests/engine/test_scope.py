"""A handler call's engine requests, aborted together when the call's caller is cancelled."""

from __future__ import annotations

from ovserve.engine.scope import CallScope, record, within


class Request:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def test_cancel_aborts_the_calls_requests_and_later_ones() -> None:
    scope, outside = CallScope(), Request()
    record(outside)  # no scope bound: nothing to do
    first, later = Request(), Request()
    with within(scope):
        record(first)
    scope.cancel()
    assert first.aborted and not outside.aborted
    with within(scope):  # the handler thread goes on after its caller was cancelled
        record(later)
    assert later.aborted
