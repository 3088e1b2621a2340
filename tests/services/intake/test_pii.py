"""Reporters' personal data: ID numbers checked, values sealed at rest, masked everywhere, revealed by one route."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.dispatch.service import reporter_key
from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from shared.migrate import upgrade_async
from shared.pii import Keyring, PersonalDataError, mask_id_number, mask_name, mask_phone
from tests.helpers import running

ID_NUMBER = "11010519491231002X"
OLD_KEY = "old:" + base64.b64encode(b"o" * 32).decode()
NEW_KEY = "new:" + base64.b64encode(b"n" * 32).decode()
REPORT: dict[str, Any] = {
    "source": "hotline",
    "external_id": "pii-1",
    "content": "幸福路的路灯坏了三天了",
    "reporter": {"name": "欧阳娜娜", "phone": "139-5724-6813", "id_number": ID_NUMBER.lower()},
}


def settings_for(tmp_path: Path, **overrides: Any) -> IntakeSettings:
    return IntakeSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}",
        consumers=False,
        **overrides,
    )


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_async(script_location=MIGRATIONS, database_url=settings_for(tmp_path).database_url)
    async with running(create_app(settings_for(tmp_path, pii_keys=OLD_KEY))) as client:
        yield client


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "intake.db") as db:
        return db.execute(sql).fetchall()


def test_masks_keep_only_what_a_unit_needs_to_recognise_the_caller() -> None:
    assert [mask_name(n) for n in ("张", "张三", "张小三", "欧阳娜娜", " ", None)] == [
        "*",
        "张*",
        "张*三",
        "欧**娜",
        None,
        None,
    ]
    assert [mask_phone(p) for p in ("13812341234", "138-1234-1234", "12345", "")] == ["138****1234"] * 2 + [
        "*****",
        None,
    ]
    assert mask_id_number(ID_NUMBER) == "110105********002X"


def test_a_keyring_opens_what_any_of_its_keys_sealed_and_only_for_the_same_record() -> None:
    old, rotated = Keyring.parse(OLD_KEY), Keyring.parse(f"{NEW_KEY},{OLD_KEY}")
    sealed = old.seal({"phone": "13957246813"}, context="report-1")
    assert sealed.startswith("old:") and "13957246813" not in sealed
    assert rotated.open(sealed, context="report-1") == {"phone": "13957246813"}
    assert rotated.seal({"phone": "1"}, context="r").startswith("new:")
    with pytest.raises(PersonalDataError, match="does not open for this record"):
        rotated.open(sealed, context="report-2")
    with pytest.raises(PersonalDataError, match="key 'old', which is not configured"):
        Keyring.parse(NEW_KEY).open(sealed, context="report-1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-colon-TOPSECRETVALUE", "write kid:base64key"),
        ("k:TOPSECRETVALUE!!", "not valid base64"),
        ("k:" + base64.b64encode(b"TOPSECRETVALUE").decode(), "16, 24 or 32 bytes"),
        (f"{OLD_KEY},{OLD_KEY}", "given twice"),
    ],
)
def test_bad_keys_are_refused_without_printing_them(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        IntakeSettings(pii_keys=spec)
    assert message in str(refused.value)
    assert "TOPSECRETVALUE" not in str(refused.value) and OLD_KEY.split(":")[1] not in str(refused.value)


def test_the_development_key_and_caller_secret_are_refused_outside_development() -> None:
    real: dict[str, Any] = {"pii_keys": NEW_KEY, "caller_key_secret": "a-real-random-secret"}
    production: dict[str, Any] = {"environment": "production", "database_url": "postgresql+asyncpg://db/intake"}
    with pytest.raises(ValidationError, match="development placeholder key"):
        IntakeSettings(**production, caller_key_secret="a-real-random-secret")
    with pytest.raises(ValidationError, match="CALLER_KEY_SECRET is a placeholder"):
        IntakeSettings(**production, pii_keys=NEW_KEY)
    settings = IntakeSettings(**production, **real)
    assert settings.personal_data().keyring.writer == "new"
    assert "a-real-random-secret" not in repr(settings) and NEW_KEY not in repr(settings)


async def test_a_reporter_is_sealed_masked_everywhere_and_revealed_in_full_by_its_route(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = (await intake.post("/v1/reports", json=REPORT)).json()
    masked = {"name": "欧**娜", "phone": "139****6813", "id_number": "110105********002X"}
    assert (await intake.get(f"/v1/reports/{created['id']}")).json()["reporter"] == masked
    revealed = await intake.get(f"/v1/reports/{created['id']}/reporter")
    assert revealed.headers["cache-control"] == "no-store"
    assert revealed.json() == {
        "report_id": created["id"],
        "case_number": created["case_number"],
        "reporter": {"name": "欧阳娜娜", "phone": "139-5724-6813", "id_number": ID_NUMBER},
    }
    [(sealed, stored_mask)] = rows(tmp_path, "select reporter_sealed, reporter_masked from reports")
    assert sealed.startswith("old:") and "欧阳" not in sealed and json.loads(stored_mask) == masked
    [(payload,)] = rows(tmp_path, "select payload from outbox")
    assert json.loads(payload)["reporter"] == {
        "name_masked": "欧**娜",
        "phone_masked": "139****6813",
        "id_number_masked": "110105********002X",
        # The same pseudonym dispatch computed before intake did, so repeat callers keep matching.
        "caller_key": reporter_key("139-5724-6813", secret="development-only"),
    }


async def test_a_wrong_id_number_is_a_422_naming_the_field_without_echoing_it(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    for wrong, reason in ((ID_NUMBER[:17] + "1", "check character"), (ID_NUMBER[:16], "18 characters")):
        body = REPORT | {"reporter": REPORT["reporter"] | {"id_number": wrong}}
        answer = await intake.post("/v1/reports", json=body)
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        [error] = answer.json()["errors"]
        assert error["field"] == "reporter.id_number" and reason in error["message"]
        assert wrong not in answer.text and "13957246813" not in answer.text.replace("-", "")
    assert rows(tmp_path, "select count(*) from reports") == [(0,)]


async def test_a_retry_replays_and_a_different_reporter_under_the_same_id_is_a_conflict(
    intake: httpx.AsyncClient,
) -> None:
    first = (await intake.post("/v1/reports", json=REPORT)).json()
    again = await intake.post("/v1/reports", json=REPORT)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    other = REPORT | {"reporter": REPORT["reporter"] | {"phone": "13900000000"}}
    assert (await intake.post("/v1/reports", json=other)).status_code == 409


async def test_after_a_key_rotation_old_reporters_still_open_and_a_missing_key_is_a_clear_500(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    old = (await intake.post("/v1/reports", json=REPORT)).json()
    grid = (
        await intake.post("/v1/reports", json={"source": "grid", "external_id": "g1", "content": "垃圾满溢"})
    ).json()
    async with running(create_app(settings_for(tmp_path, pii_keys=f"{NEW_KEY},{OLD_KEY}"))) as rotated:
        new = (await rotated.post("/v1/reports", json=REPORT | {"external_id": "pii-2"})).json()
        for report in (old, new):
            shown = (await rotated.get(f"/v1/reports/{report['id']}/reporter")).json()
            assert shown["reporter"]["phone"] == "139-5724-6813"
        assert (await rotated.get(f"/v1/reports/{grid['id']}/reporter")).json()["reporter"] is None
        assert (await rotated.get("/v1/reports/nope/reporter")).status_code == 404
    assert [
        s[:4] for (s,) in rows(tmp_path, "select reporter_sealed from reports where reporter_sealed is not null")
    ] == [
        "old:",
        "new:",
    ]
    async with running(create_app(settings_for(tmp_path, pii_keys=NEW_KEY))) as without_old:
        answer = await without_old.get(f"/v1/reports/{old['id']}/reporter")
        assert answer.status_code == 500 and "key 'old', which is not configured" in answer.json()["detail"]
        told = answer.text.replace(old["id"], "")  # the report's id may hold "139" by chance
        assert "139" not in told and "6813" not in told and "欧" not in told
