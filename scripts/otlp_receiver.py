"""A minimal OTLP/gRPC trace receiver for trying ovserve's traces without a collector: prints
one JSON line per span it gets (name, trace and span ids, parent, duration, attributes).

    .venv/bin/python scripts/otlp_receiver.py --port 4317 > spans.jsonl &
    .venv/bin/ovserve ... --otlp_traces_endpoint http://127.0.0.1:4317

Uses opentelemetry-proto's TraceService (installed with the server's tracing packages).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Printer(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            service = {a.key: _value(a.value) for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    print(json.dumps({
                        "service": service.get("service.name"), "name": span.name,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
                        "attributes": {a.key: _value(a.value) for a in span.attributes}}),
                        flush=True)
        return trace_service_pb2.ExportTraceServiceResponse()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4317)
    args = parser.parse_args(argv)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Printer(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"OTLP/gRPC receiver on {args.host}:{args.port}", file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
