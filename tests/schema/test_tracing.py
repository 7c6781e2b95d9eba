"""OpenTelemetry tracing, when switched on, records a span per operation."""

from __future__ import annotations

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.server.app import create_app
from tests.conftest import GatewayFactory
from tests.support.helpers import TOKEN, settings_for_tests

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


async def test_spans_are_recorded_when_tracing_is_on(make_gateway: GatewayFactory) -> None:
    import dataclasses

    trace.set_tracer_provider(PROVIDER)
    settings = settings_for_tests()
    settings = settings.replace(server=dataclasses.replace(settings.server, otel_enabled=True))
    app = create_app(make_gateway(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.post(
            "/graphql",
            json={"query": "query Traced { subscriptions(first: 1) { totalCount } }"},
            headers={"X-Auth-Token": TOKEN},
        )
    assert response.json()["data"]["subscriptions"]["totalCount"] == 301
    names = [span.name for span in EXPORTER.get_finished_spans()]
    assert any("Traced" in name for name in names)
    assert all(TOKEN not in str(span.attributes) for span in EXPORTER.get_finished_spans())
