"""Prometheus metrics for operations: requests, latency, outbox backlog, consumed events (``GET /metrics``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import require
from shared.runtime import ServiceRuntime


class _RuntimeCollector(Collector):
    """Reads the running service's state at scrape time."""

    def __init__(self, app: FastAPI, service: str) -> None:
        self.app = app
        self.service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        runtime: ServiceRuntime | None = getattr(self.app.state, "runtime", None)
        if runtime is None:
            return
        consumed = CounterMetricFamily(
            "jiesu_events_consumed", "Events applied by each consumer group", labels=["service", "group"]
        )
        for spec in runtime.consumer_specs:
            consumed.add_metric([self.service, spec.group], spec.processed)
        yield consumed
        dead = CounterMetricFamily(
            "jiesu_dead_letters", "Events set aside on the dead-letter topic", labels=["service", "group"]
        )
        for spec in runtime.consumer_specs:
            dead.add_metric([self.service, spec.group], spec.dead_letters)
        yield dead
        published = CounterMetricFamily(
            "jiesu_events_published", "Events the outbox relay published", labels=["service"]
        )
        published.add_metric([self.service], runtime.relay.published if runtime.relay else 0)
        yield published
        pruned = CounterMetricFamily(
            "jiesu_housekeeping_deleted",
            "Rows housekeeping deleted: published outbox rows, old inbox rows, read embedded-bus messages",
            labels=["service", "table"],
        )
        if runtime.housekeeping is not None:
            for table, count in runtime.housekeeping.deleted.items():
                pruned.add_metric([self.service, table], count)
        yield pruned
        healthy = GaugeMetricFamily(
            "jiesu_background_healthy", "1 while every background task runs", labels=["service"]
        )
        healthy.add_metric([self.service], 1.0 if runtime.background_healthy() else 0.0)
        yield healthy


class _Measure:
    """Counts and times each HTTP request by route and status (plain ASGI: no task or stream per request)."""

    def __init__(self, app: ASGIApp, *, service: str, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.service = service
        self.requests = requests
        self.latency = latency
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, noting)
        # The router records the matched route in the scope; its path template keeps label values few.
        route = str(getattr(scope.get("route"), "path", "unmatched"))
        if route != "/metrics":
            key = (scope["method"], route, status)
            children = self._children.get(key)
            if children is None:  # routes and statuses are few: each series is looked up once
                children = self._children[key] = (
                    self.requests.labels(self.service, key[0], route, str(status)),
                    self.latency.labels(self.service, key[0], route),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - began)


def install_metrics(app: FastAPI, *, service: str) -> None:
    """Count requests by route and status, time them, and serve everything at ``/metrics``."""
    registry = CollectorRegistry()
    requests = Counter(
        "jiesu_http_requests", "HTTP requests answered", ["service", "method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "jiesu_http_request_seconds",
        "Time to answer an HTTP request",
        ["service", "method", "route"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )
    registry.register(_RuntimeCollector(app, service))

    app.add_middleware(_Measure, service=service, requests=requests, latency=latency)

    # Scrapers present a credential like any client (Prometheus: `authorization: {credentials: <analyst key>}`).
    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require("metrics:read"))])
    async def metrics(request: Request) -> Response:
        runtime: ServiceRuntime = request.app.state.runtime
        body = generate_latest(registry)
        if runtime.relay is not None:
            waiting = await runtime.relay.backlog()
            body += (
                b"# HELP jiesu_outbox_backlog Events waiting in the outbox\n# TYPE jiesu_outbox_backlog gauge\n"
                + f'jiesu_outbox_backlog{{service="{service}"}} {waiting}\n'.encode()
            )
        return Response(body, media_type=CONTENT_TYPE_LATEST)
