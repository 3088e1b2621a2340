"""Receiving reports: accepted once, replayed on retry, bad input refused with the field named and nothing stored."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from shared.migrate import upgrade_async
from tests.helpers import running

GOOD: dict[str, Any] = {
    "source": "hotline",
    "external_id": "12345-0001",
    "content": "幸福路的路灯坏了三天了",
    "address": "东城街道幸福路12号",
    "reporter": {"name": "张三", "phone": "13812341234"},
    "location": {"lat": 39.91, "lon": 116.31},
    "occurred_at": "2026-11-26T08:00:00+08:00",
}


async def migrated(tmp_path: Path, **settings: Any) -> IntakeSettings:
    """Settings of an intake on a migrated SQLite file in ``tmp_path`` (intake.db), its consumers off."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    return IntakeSettings(
        database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}", consumers=False, **settings
    )


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = await migrated(tmp_path, max_body_bytes=32768)
    async with running(create_app(settings)) as client:
        yield client


def stored(tmp_path: Path) -> tuple[int, int]:
    with sqlite3.connect(tmp_path / "intake.db") as db:
        return db.execute("select count(*) from reports").fetchone()[0], db.execute(
            "select count(*) from outbox"
        ).fetchone()[0]


async def test_a_report_is_numbered_and_can_be_read_back_with_the_phone_masked(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    answer = await intake.post("/v1/reports", json=GOOD)
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "received" and body["case_number"].startswith("JS")
    read = (await intake.get(f"/v1/reports/{body['id']}")).json()
    assert read["content"] == GOOD["content"]
    assert read["reporter"] == {"name": "张*", "phone": "138****1234", "id_number": None}
    assert stored(tmp_path) == (1, 1)


async def test_the_same_report_again_returns_the_first_answer_and_creates_nothing(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    first = await intake.post("/v1/reports", json=GOOD)
    again = await intake.post("/v1/reports", json=GOOD)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(tmp_path) == (1, 1)


async def test_an_external_id_reused_for_another_report_is_a_conflict(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    await intake.post("/v1/reports", json=GOOD)
    clash = await intake.post("/v1/reports", json=GOOD | {"content": "另一件事"})
    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["errors"][0]["field"] == "external_id"
    assert stored(tmp_path) == (1, 1)


async def test_the_same_external_id_from_another_source_is_another_report(intake: httpx.AsyncClient) -> None:
    a = await intake.post("/v1/reports", json=GOOD)
    b = await intake.post("/v1/reports", json=GOOD | {"source": "grid"})
    assert b.status_code == 201 and a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "fax"}, "source"),
        ({"content": "字" * 4001}, "content"),
        ({"content": ""}, "content"),
        ({"location": {"lat": 91, "lon": 116.3}}, "location.lat"),
        ({"location": {"lat": 39.9, "lon": -181}}, "location.lon"),
        ({"reporter": {"phone": "call me"}}, "reporter.phone"),
        ({"occurred_at": "2026-11-26T08:00:00"}, "occurred_at"),
        ({"attachments": ["not a url"]}, "attachments.0"),
        ({"colour": "red"}, "colour"),
        ({"external_id": None}, "external_id"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(
    intake: httpx.AsyncClient, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    answer = await intake.post("/v1/reports", json=GOOD | change)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]]
    assert stored(tmp_path) == (0, 0)


@pytest.mark.parametrize("path", ["/v1/reports", "/v1/reports/batch"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"source": "hotline",',  # cut short
        b'{"source": "hotline", "location": {"lat": NaN, "lon": 116.4}}',  # not JSON, though Python's parser reads it
        b'{"source": "hotline", "content": "\\ud800"}',  # a lone surrogate: no text can hold it
    ],
)
async def test_malformed_json_is_a_problem_not_a_crash(
    intake: httpx.AsyncClient, tmp_path: Path, path: str, body: bytes
) -> None:
    answer = await intake.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["code"] == "json_invalid"
    assert error["field"] == "body"
    assert error["message"].startswith("not valid JSON at character ")
    assert stored(tmp_path) == (0, 0)


async def test_an_oversized_body_is_refused_before_it_is_read(intake: httpx.AsyncClient, tmp_path: Path) -> None:
    answer = await intake.post("/v1/reports", json=GOOD | {"subject": "x" * 40_000})
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["field"] == "body"
    assert stored(tmp_path) == (0, 0)


async def test_an_unknown_report_is_a_404_problem(intake: httpx.AsyncClient) -> None:
    answer = await intake.get("/v1/reports/no-such-id")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no report no-such-id"


async def test_health_and_readiness(intake: httpx.AsyncClient) -> None:
    assert (await intake.get("/healthz")).json() == {"status": "ok"}
    ready = await intake.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] is True


async def test_a_batch_accepts_new_reports_replays_known_ones_and_flags_clashes(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    first = (await intake.post("/v1/reports", json=GOOD)).json()
    batch = [
        GOOD,
        GOOD | {"content": "同一编号的另一件事"},
        GOOD | {"external_id": "b-1"},
        GOOD | {"external_id": "b-2", "source": "grid"},
        GOOD | {"external_id": "b-1"},
    ]
    answer = await intake.post("/v1/reports/batch", json={"reports": batch})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["replayed"], body["conflicts"]) == (2, 2, 1)
    assert [r["status"] for r in body["results"]] == [200, 409, 201, 201, 200]
    assert body["results"][0]["id"] == first["id"]
    assert body["results"][4]["id"] == body["results"][2]["id"]
    numbers = [first["case_number"], body["results"][2]["case_number"], body["results"][3]["case_number"]]
    assert len(set(numbers)) == 3 and all(n.startswith("JS") for n in numbers)
    assert stored(tmp_path) == (3, 3)


async def test_a_batch_with_one_bad_report_stores_nothing_and_names_it(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    batch = [GOOD | {"external_id": "ok"}, GOOD | {"external_id": "bad", "location": {"lat": 200, "lon": 0}}]
    answer = await intake.post("/v1/reports/batch", json={"reports": batch})
    assert answer.status_code == 422
    assert "reports.1.location.lat" in [e["field"] for e in answer.json()["errors"]]
    assert stored(tmp_path) == (0, 0)


async def test_case_numbers_are_consecutive_per_day(intake: httpx.AsyncClient) -> None:
    numbers = [
        (await intake.post("/v1/reports", json=GOOD | {"external_id": f"n{i}"})).json()["case_number"] for i in range(3)
    ]
    tails = [int(n[-7:]) for n in numbers]
    assert tails == [tails[0], tails[0] + 1, tails[0] + 2]


async def test_a_wrong_method_says_which_are_allowed(intake: httpx.AsyncClient) -> None:
    answer = await intake.delete("/v1/reports")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.headers["content-type"] == "application/problem+json"
