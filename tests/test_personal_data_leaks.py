"""A caller's name, phone and ID number, planted through the hotline, appear nowhere but in the sealed reporter.

The three services run together (embedded, then PostgreSQL and Kafka); a report carrying the planted values
goes through every step, reports that fail validation carry them too, and then every log record, stderr, every
message on every topic, every metric, every error body, every GET answer and the raw database files are scanned.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from tests.helpers import credential, eventually
from tests.stack import Stack, distributed_stack, embedded_stack
from tests.test_personal_data_scanner import Planted

API_KEY = "open311-key-of-the-leak-scan"
REVEAL = "/v1/reports/{report_id}/reporter"
# Path parameters of the GET routes, filled from the case the scan drives.
PARAMETERS = {
    "case_id": "id",
    "report_id": "id",
    "service_request_id": "id",
    "token": "case_number",
    "unit_code": "unit",
    "response_format": "json",
    "service_code": "K0101",
}


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The (already started) app behind a real uvicorn server with its access log on; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's records go to the root logger, where the test captures them.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=True))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool | None:
            return server.started or None

        await eventually(started, timeout=10, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def record(planted: Planted, where: str, answer: httpx.Response) -> httpx.Response:
    """Keep an answer's headers and body for the scan."""
    headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    planted.add(f"{answer.request.method} {answer.request.url.path} ({where})", f"{headers}\n\n{answer.text}")
    return answer


async def refused_reports(http: httpx.AsyncClient, planted: Planted) -> None:
    """Reports carrying the planted values that fail validation, each refused naming the field."""
    good = {"source": "hotline", "content": "路灯坏了", "address": "东城街道幸福路"}
    person = {"name": planted.name, "phone": planted.phone}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"reporter": person | {"id_number": planted.invalid_id_number}}, "reporter.id_number"),
        ({"reporter": person | {"id_number": planted.id_number[:17]}}, "reporter.id_number"),
        ({"reporter": {"name": planted.name, "mobile": planted.phone}}, "reporter.mobile"),
        ({"reporter": f"{planted.name} {planted.phone} {planted.id_number}"}, "reporter"),
        ({"reporter": {"name": planted.name, "phone": planted.phone + "#"}}, "reporter.phone"),
        ({"reporter": person, "occurred_at": f"电话{planted.phone}"}, "occurred_at"),
    ]
    for index, (change, field) in enumerate(cases):
        answer = record(
            planted, "refused", await http.post("/v1/reports", json=good | change | {"external_id": f"x{index}"})
        )
        assert answer.status_code == 422, (index, answer.text)
        assert field in [e["field"] for e in answer.json()["errors"]]
    batch = {"reports": [good | {"external_id": "b1"}, good | {"external_id": "b2"} | cases[0][0]]}
    answer = record(planted, "refused batch", await http.post("/v1/reports/batch", json=batch))
    assert answer.status_code == 422 and "reports.1.reporter.id_number" in answer.text
    broken = f'{{"source": "hotline", "reporter": {{"name": "{planted.name}", "phone": "{planted.phone}"'
    answer = record(planted, "broken JSON", await http.post("/v1/reports", content=broken.encode()))
    assert answer.status_code == 422
    form = {"api_key": API_KEY, "service_code": "K0101", "address_string": "幸福路", "last_name": planted.name}
    answer = record(
        planted, "open311", await http.post("/open311/v2/requests.json", data=form | {"phone": planted.phone + "x"})
    )
    assert answer.status_code == 400 and "phone" in answer.text


async def every_get(planted: Planted, client: httpx.AsyncClient, values: dict[str, str]) -> None:
    """Every GET route of a service's OpenAPI document (the reveal route aside), plus its metrics and health."""
    document = (await client.get("/openapi.json")).json()
    paths = ["/metrics", "/healthz", "/readyz"]
    for path, methods in document["paths"].items():
        if "get" not in methods or path == REVEAL:
            continue
        names = re.findall(r"{(\w+)}", path)
        assert set(names) <= set(PARAMETERS), f"the scan does not know how to fill {path}"
        paths.append(re.sub(r"{(\w+)}", lambda m: values.get(PARAMETERS[m.group(1)], PARAMETERS[m.group(1)]), path))
    for path in paths:
        record(planted, "GET sweep", await client.get(path))


async def drive(stack: Stack, planted: Planted) -> dict[str, str]:
    """A hotline report with the planted reporter through every step; the case's id, number and unit."""
    intake = stack.apps["intake"]
    # The hotline (12345) posts the report and may see the reporter in full.
    hotline = await credential(intake, "hotline")
    async with served(intake) as base, httpx.AsyncClient(base_url=base, headers=hotline) as http:
        reporter = {"name": planted.name, "phone": planted.phone, "id_number": planted.id_number}
        body = {"source": "hotline", "external_id": "leak-1", "content": "幸福路上的路灯坏了三天了，晚上很黑"}
        answer = record(planted, "accepted", await http.post("/v1/reports", json=body | {"reporter": reporter}))
        assert answer.status_code == 201, answer.text
        again = record(planted, "replayed", await http.post("/v1/reports", json=body | {"reporter": reporter}))
        assert again.headers["Idempotent-Replayed"] == "true"
        accepted = answer.json()
        await refused_reports(http, planted)
        case_id = accepted["id"]
        revealed = await http.get(REVEAL.format(report_id=case_id))
        # The scanner sees the values where they are meant to be: the only answer that shows them.
        assert revealed.json()["reporter"] == reporter and planted.found(revealed.content) == [
            "name",
            "phone",
            "id_number",
        ]
        assert revealed.headers["cache-control"] == "no-store"
        case = await stack.case_in(case_id, "dispatched")
        assert case["reporter_phone"] == planted.masked()["phone"]
        unit = case["primary_unit"]
        for action, extra in (("sign", {}), ("complete", {"result": "已更换灯具"})):
            done = record(
                planted,
                action,
                await stack.dispatch.post(f"/v1/cases/{case_id}/{action}", json={"unit_code": unit} | extra),
            )
            assert done.status_code == 200, done.text
        await stack.awaiting_feedback(case_id)
        feedback = {"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
        assert (
            record(planted, "feedback", await stack.evaluation.post("/v1/feedback", json=feedback)).status_code == 201
        )
        await stack.case_in(case_id, "closed")
        shown = await stack.report_in(case_id, "closed")
        assert shown["reporter"] == planted.masked()
    values = {"id": case_id, "case_number": accepted["case_number"], "unit": unit}
    for client in (stack.intake, stack.dispatch, stack.evaluation):
        await every_get(planted, client, values)
    # What the unit itself (承办单位) is shown, with its own scoped credential.
    as_unit = await credential(stack.apps["dispatch"], "unit", units=[unit])
    transport = httpx.ASGITransport(app=stack.apps["dispatch"])
    async with httpx.AsyncClient(transport=transport, base_url="http://unit", headers=as_unit) as unit_client:
        own = record(planted, "unit", await unit_client.get(f"/v1/cases/{case_id}"))
        assert own.status_code == 200 and own.json()["reporter_phone"] == planted.masked()["phone"]
        await every_get(planted, unit_client, values)
    return values


def scan_logs(planted: Planted, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Every captured log record, formatted with its traceback, and everything written to stdout and stderr."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for item in caplog.records:
        planted.add(f"log {item.name}", formatter.format(item) + repr(item.args))
    out, err = capfd.readouterr()
    planted.add("stdout", out)
    planted.add("stderr", err)
    assert any(r.name == "uvicorn.access" for r in caplog.records), "the access log was not captured"


def embedded_bus(planted: Planted, bus: Path) -> list[str]:
    """Every message of the embedded bus (topic, key, headers, value); the topics seen."""
    with sqlite3.connect(bus) as db:
        rows = db.execute("select topic, key, headers, payload from bus_messages").fetchall()
    for topic, key, headers, payload in rows:
        planted.add(f"bus {topic}", f"{key}\n{headers}\n".encode() + payload)
    return sorted({row[0] for row in rows})


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Planted:
    """Fresh values, every log record captured, and an Open311 key for intake."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(
        "JIESU_INTAKE_OPEN311_API_KEYS_SHA256", json.dumps([hashlib.sha256(API_KEY.encode()).hexdigest()])
    )
    return Planted.fresh()


async def test_planted_personal_data_is_only_in_the_sealed_reporter_embedded(
    tmp_path: Path, planted: Planted, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    async with embedded_stack(tmp_path) as stack:
        values = await drive(stack, planted)
    topics = await asyncio.to_thread(embedded_bus, planted, tmp_path / "bus.db")
    assert f"jiesu.dispatch.unit.{values['unit']}" in topics and "jiesu.intake.reports" in topics
    await asyncio.to_thread(planted.add_files, tmp_path)
    scan_logs(planted, caplog, capfd)
    assert planted.leaks() == []
    # What the scan covered, so a scan of nothing cannot pass.
    assert {where.split(" ")[0] for where, _ in planted.seen} >= {"GET", "POST", "bus", "file", "log", "stderr"}


async def kafka_messages(planted: Planted, bootstrap: str, namespace: str) -> list[str]:
    """Every message on every topic of the test's namespace, headers and values; the topics seen."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(namespace))
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assert partitions, f"no topics of {namespace} on the broker"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                for m in messages:
                    headers = b"\n".join(k.encode() + b": " + v for k, v in m.headers)
                    planted.add(f"bus {tp.topic}", (m.key or b"") + b"\n" + headers + b"\n" + (m.value or b""))
        return names
    finally:
        await consumer.stop()


async def database_rows(planted: Planted, url: str) -> None:
    """Every row of every table of a PostgreSQL database, as text."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    db = await asyncpg.connect(dsn)
    try:
        tables = await db.fetch("select tablename from pg_tables where schemaname = 'public'")
        for (table,) in tables:
            for row in await db.fetch(f'select t::text from "{table}" t'):
                planted.add(f"row {make_url(url).database}.{table}", row[0])
    finally:
        await db.close()


async def test_planted_personal_data_is_only_in_the_sealed_reporter_on_postgres_and_kafka(
    pg_databases: Callable[[], Awaitable[str]],
    kafka_bootstrap: str,
    namespace: str,
    planted: Planted,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    urls = {name: await pg_databases() for name in ("intake", "dispatch", "evaluation")}
    async with distributed_stack(urls, kafka=kafka_bootstrap, namespace=namespace) as stack:
        values = await drive(stack, planted)
    topics = await kafka_messages(planted, kafka_bootstrap, namespace)
    assert f"{namespace}jiesu.dispatch.unit.{values['unit']}" in topics
    for url in urls.values():
        await database_rows(planted, url)
    assert any(where.endswith(".reports") and values["id"].encode() in data for where, data in planted.seen)
    scan_logs(planted, caplog, capfd)
    assert planted.leaks() == []
    assert {where.split(" ")[0] for where, _ in planted.seen} >= {"GET", "POST", "bus", "row", "log", "stderr"}
