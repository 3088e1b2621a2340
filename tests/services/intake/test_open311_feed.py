"""The GeoReport feed: filters, the 90-day window, paging, tokens, and the case's status, unit and deadline."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake.consumers import on_case_event
from shared import topics
from shared.events import CloudEvent
from tests.services.intake.test_open311 import BASE, FORM, error_descriptions, open311_app, xml

GOOD_V1: dict[str, Any] = {
    "source": "hotline",
    "external_id": "12345-0001",
    "content": "电话里说的事",
    "kind_code": "K0101",
}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with open311_app(tmp_path) as both:
        yield both


async def post(client: httpx.AsyncClient, **changes: str) -> dict[str, Any]:
    """Post a request (the FORM with changes) and return the created answer."""
    answer = await client.post(f"{BASE}/requests.json", data=FORM | changes)
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()[0]
    return created


async def case_event(app: FastAPI, report_id: str, event_type: str, at: datetime, **data: Any) -> None:
    """Deliver one of dispatch's case events to intake's consumer."""
    summary = {"case_id": report_id, "status": "dispatched", "primary_unit": None} | data
    event = CloudEvent(type=event_type, source="/jiesu/dispatch", subject=report_id, time=at, data=summary)
    async with app.state.runtime.sessions() as session, session.begin():
        await on_case_event(session, event)


def age(tmp_path: Path, report_id: str, days: int) -> None:
    """Pretend a report arrived ``days`` ago."""
    when = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(tmp_path / "intake.db") as db:
        db.execute("update reports set received_at = ? where id = ?", (when, report_id))


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["service_request_id"] for r in answer.json()]


async def test_a_request_reads_back_with_status_notes_and_its_jiesu_status(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = served
    created = await post(client)
    [request] = (await client.get(f"{BASE}/requests/{created['service_request_id']}.json")).json()
    assert request["status"] == "open" and request["jiesu_status"] == "received"
    assert request["status_notes"] == "已受理，等待分拨"
    assert request["service_code"] == "K0101" and request["service_name"] == "路灯故障"
    assert request["description"] == FORM["description"] and request["address"] == FORM["address_string"]
    assert (request["lat"], request["long"]) == (39.91, 116.31)
    assert request["media_url"] == FORM["media_url"]
    assert request["requested_datetime"].endswith("+08:00")
    assert "phone" not in str(request) and "张" not in str(request)
    assert "expected_datetime" not in request and "agency_responsible" not in request
    root = xml(await client.get(f"{BASE}/requests/{created['service_request_id']}.xml"))
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == created["service_request_id"]
    assert root.findtext("request/status") == "open" and root.findtext("request/lat") == "39.91"


async def test_dispatch_events_bring_the_deadline_the_unit_and_closing(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    request_id = (await post(client))["service_request_id"]
    now = datetime.now(UTC)
    deadline = "2026-12-04T17:00:00+08:00"
    await case_event(
        app,
        request_id,
        topics.CASE_DISPATCHED,
        now,
        primary_unit="DEPT-UM",
        complete_deadline=deadline,
        sign_deadline=None,
    )
    [request] = (await client.get(f"{BASE}/requests/{request_id}.json")).json()
    assert request["expected_datetime"] == deadline
    assert request["agency_responsible"] == "城市管理委员会"
    assert (request["status"], request["jiesu_status"]) == ("open", "dispatched")
    await case_event(app, request_id, topics.CASE_SIGNED, now + timedelta(minutes=5), status="signed")
    [request] = (await client.get(f"{BASE}/requests/{request_id}.json")).json()
    assert request["expected_datetime"] == deadline, "an event without a deadline keeps the last one"
    assert request["status_notes"] == "承办单位已签收"
    extended = "2026-12-09T17:00:00+08:00"
    later = now + timedelta(days=1)
    await case_event(
        app, request_id, topics.CASE_EXTENSION_DECIDED, later, status="in_progress", complete_deadline=extended
    )
    [request] = (await client.get(f"{BASE}/requests/{request_id}.json")).json()
    assert (request["expected_datetime"], request["status_notes"]) == (extended, "承办单位办理中")
    await case_event(app, request_id, topics.CASE_CLOSED, now + timedelta(days=3), status="closed")
    await case_event(app, request_id, topics.CASE_SIGNED, now + timedelta(minutes=6), status="signed")
    [request] = (await client.get(f"{BASE}/requests/{request_id}.json")).json()
    assert (request["status"], request["jiesu_status"]) == ("closed", "closed"), "a late old event changes nothing"
    assert datetime.fromisoformat(request["updated_datetime"]) == (now + timedelta(days=3)).replace(microsecond=0)


@pytest.mark.parametrize(
    ("status", "open311"),
    [
        ("refused", "closed"),
        ("transferred", "closed"),
        ("merged", "closed"),
        ("returned", "open"),
        ("reopened", "open"),
        ("completed", "open"),
    ],
)
async def test_a_case_ended_any_way_is_closed_and_one_still_worked_on_open(
    served: tuple[FastAPI, httpx.AsyncClient], status: str, open311: str
) -> None:
    app, client = served
    request_id = (await post(client))["service_request_id"]
    await case_event(app, request_id, topics.CASE_JUDGED, datetime.now(UTC), status=status)
    [request] = (await client.get(f"{BASE}/requests/{request_id}.json")).json()
    assert (request["status"], request["jiesu_status"]) == (open311, status)


async def test_filters_by_service_code_status_and_ids(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = served
    lamp = (await post(client))["service_request_id"]
    cover = (await post(client, service_code="K0102", **{"attribute[request_type]": "help"}))["service_request_id"]
    noise = (await post(client, service_code="K0201", description="噪音"))["service_request_id"]
    await case_event(app, cover, topics.CASE_CLOSED, datetime.now(UTC), status="closed")
    everything = await client.get(f"{BASE}/requests.json")
    assert ids(everything) == [noise, cover, lamp], "newest first"
    assert ids(await client.get(f"{BASE}/requests.json", params={"service_code": "K0101,K0201"})) == [noise, lamp]
    assert ids(await client.get(f"{BASE}/requests.json", params={"status": "closed"})) == [cover]
    assert ids(await client.get(f"{BASE}/requests.json", params={"status": "open"})) == [noise, lamp]
    assert len(ids(await client.get(f"{BASE}/requests.json", params={"status": "open,closed"}))) == 3
    by_id = {"service_request_id": f"{lamp},{cover},unknown", "service_code": "K0201", "status": "open"}
    assert sorted(ids(await client.get(f"{BASE}/requests.json", params=by_id))) == sorted([lamp, cover])
    root = xml(await client.get(f"{BASE}/requests.xml", params={"status": "closed"}))
    assert [r.findtext("service_request_id") for r in root.findall("request")] == [cover]
    assert [r.findtext("status") for r in root.findall("request")] == ["closed"]


async def test_the_window_is_the_last_90_days_unless_asked_and_never_longer(
    served: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    _, client = served
    recent = (await post(client))["service_request_id"]
    old = (await post(client, description="去年的事"))["service_request_id"]
    age(tmp_path, old, days=120)
    assert ids(await client.get(f"{BASE}/requests.json")) == [recent]
    now = datetime.now(UTC)
    since = {"start_date": (now - timedelta(days=130)).isoformat(timespec="seconds")}
    assert ids(await client.get(f"{BASE}/requests.json", params=since)) == [old], "90 days from a lone start"
    until = {"end_date": (now - timedelta(days=100)).isoformat(timespec="seconds")}
    assert ids(await client.get(f"{BASE}/requests.json", params=until)) == [old], "90 days up to a lone end"
    both = since | {"end_date": (now + timedelta(minutes=1)).isoformat(timespec="seconds")}
    assert ids(await client.get(f"{BASE}/requests.json", params=both)) == [recent], "a longer range keeps its end"
    reversed_range = {"start_date": now.isoformat(), "end_date": (now - timedelta(days=1)).isoformat()}
    assert ids(await client.get(f"{BASE}/requests.json", params=reversed_range)) == []
    assert ids(await client.get(f"{BASE}/requests.json", params={"service_request_id": old})) == [old]


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-11-26"}, "end_date"),
        ({"end_date": "2026-13-01T00:00:00Z"}, "end_date"),
        ({"status": "pending"}, "status"),
        ({"page": "0"}, "page"),
        ({"page_size": "1001"}, "page_size"),
        ({"service_request_id": ",".join(["x"] * 1001)}, "service_request_id: at most 1000"),
    ],
)
async def test_bad_filters_are_400_errors(
    served: tuple[FastAPI, httpx.AsyncClient], params: dict[str, str], mentions: str
) -> None:
    _, client = served
    for fmt in ("json", "xml"):
        answer = await client.get(f"{BASE}/requests.{fmt}", params=params)
        assert any(d.startswith(mentions) for d in error_descriptions(answer, 400)), answer.text


async def test_pages_follow_each_other_without_gaps(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    posted = [(await post(client, description=f"第{i}件"))["service_request_id"] for i in range(5)]
    pages = [ids(await client.get(f"{BASE}/requests.json", params={"page_size": 2, "page": p})) for p in (1, 2, 3, 4)]
    assert pages == [posted[4:2:-1], posted[2:0:-1], posted[:1], []]


async def test_a_token_is_the_case_number_and_leads_to_the_request(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    created = await post(client)
    answer = await client.get(f"{BASE}/tokens/{created['token']}.json")
    assert answer.json() == [{"service_request_id": created["service_request_id"], "token": created["token"]}]
    root = xml(await client.get(f"{BASE}/tokens/{created['token']}.xml"))
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == created["service_request_id"]
    assert error_descriptions(await client.get(f"{BASE}/tokens/JS0.json"), 404) == ["token JS0 not found"]
    assert error_descriptions(await client.get(f"{BASE}/requests/nope.xml"), 404) == [
        "service_request_id nope not found"
    ]


async def test_reports_from_other_channels_stay_out_of_the_feed_unless_published(tmp_path: Path) -> None:
    async with open311_app(tmp_path) as (_, client):
        phoned = (await client.post("/v1/reports", json=GOOD_V1)).json()
        await post(client)
        assert phoned["id"] not in ids(await client.get(f"{BASE}/requests.json"))
        error_descriptions(await client.get(f"{BASE}/requests/{phoned['id']}.json"), 404)
        error_descriptions(await client.get(f"{BASE}/tokens/{phoned['case_number']}.json"), 404)
    async with open311_app(tmp_path, open311_publish_all_reports=True) as (_, client):
        assert phoned["id"] in ids(await client.get(f"{BASE}/requests.json"))
        [request] = (await client.get(f"{BASE}/requests/{phoned['id']}.json")).json()
        assert request["description"] == GOOD_V1["content"] and request["service_code"] == "K0101"
