"""A local OTLP/HTTP trace collector: ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest``.

Point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at :attr:`FakeOtlpCollector.url`; :attr:`spans` decodes what arrived
(the ``opentelemetry-proto`` messages of the ``otel`` extra).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

from cep_automation.testing.fakes import FakeServer, Recorded, Reply


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, as the collector decoded it."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]


class FakeOtlpCollector(FakeServer):
    """An OTLP/HTTP (protobuf) trace receiver on 127.0.0.1."""

    def handle(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == "/v1/traces":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            return Reply(200, ExportTraceServiceResponse().SerializeToString(),
                         {"Content-Type": "application/x-protobuf"})
        return Reply(404, {"error": "not found"})

    @property
    def spans(self) -> list[ReceivedSpan]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        found = []
        for request in self.requests:
            if request.path != "/v1/traces":
                continue
            body = request.body
            if request.headers.get("Content-Encoding", request.headers.get("content-encoding", "")) == "gzip":
                body = gzip.decompress(body)
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    found += [ReceivedSpan(service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                           s.kind, {a.key: _value(a.value) for a in s.attributes})
                              for s in scope_spans.spans]
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
