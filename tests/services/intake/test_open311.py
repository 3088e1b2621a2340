"""Open311 GeoReport v2 on intake: services from the guide, requests posted as hotline reports, JSON and XML."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fastapi import FastAPI

from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from shared.auth import AuthSettings
from shared.guide import SEED_GUIDE, load_guide
from shared.migrate import upgrade_async
from tests.helpers import credential, provision_key, running

# A hotline key of the credential store, as the city's app holds it (jsk_<id>_<secret>).
KEY = "jsk_open311city_city-app-key-1"
BASE = "/open311/v2"
FORM: dict[str, str] = {
    "api_key": KEY,
    "service_code": "K0101",
    "lat": "39.91",
    "long": "116.31",
    "address_string": "东城街道幸福路12号",
    "description": "幸福路的路灯坏了三天了",
    "first_name": "三",
    "last_name": "张",
    "phone": "13812341234",
    "device_id": "phone-7",
    "media_url": "https://img.example.cn/lamp.jpg",
    "attribute[request_type]": "complain",
}


def settings_for(tmp_path: Path, **overrides: Any) -> IntakeSettings:
    """Intake on a fresh SQLite database, serving the seed guide, with one Open311 key."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        "embedded_bus_url": f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}",
        "consumers": False,
        "guide_path": SEED_GUIDE,
    }
    return IntakeSettings(**(values | overrides))


def auth_for(settings: IntakeSettings) -> AuthSettings:
    """A credential store beside the intake database."""
    folder = Path(settings.database_url.removeprefix("sqlite+aiosqlite:///")).parent
    return AuthSettings(database_url=f"sqlite+aiosqlite:///{folder / 'auth.db'}")


@asynccontextmanager
async def open311_app(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The intake app, migrated and running, with a client that sends KEY as its bearer credential."""
    settings = settings_for(tmp_path, **overrides)
    await upgrade_async(script_location=MIGRATIONS, database_url=settings.database_url)
    auth = auth_for(settings)
    await provision_key(auth.database_url, key=KEY, role="hotline")
    app = create_app(settings, auth=auth)
    async with running(app, role=None) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        yield app, client


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with open311_app(tmp_path) as (_, client):
        yield client


def stored(tmp_path: Path) -> tuple[int, int]:
    """How many reports and outbox events intake holds."""
    with sqlite3.connect(tmp_path / "intake.db") as db:
        reports = db.execute("select count(*) from reports").fetchone()[0]
        events = db.execute("select count(*) from outbox").fetchone()[0]
    return reports, events


def xml(answer: httpx.Response) -> ElementTree.Element:
    assert answer.headers["content-type"] == "text/xml; charset=utf-8"
    return ElementTree.fromstring(answer.content)


def error_descriptions(answer: httpx.Response, status: int) -> list[str]:
    """The descriptions of an errors answer, checking its shape (JSON list or <errors><error>)."""
    assert answer.status_code == status, answer.text
    if answer.headers["content-type"].startswith("text/xml"):
        root = xml(answer)
        assert root.tag == "errors"
        assert {e.findtext("code") for e in root.findall("error")} == {str(status)}
        return [e.findtext("description") or "" for e in root.findall("error")]
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    body = answer.json()
    assert isinstance(body, list) and body and {e["code"] for e in body} == {status}
    return [e["description"] for e in body]


async def test_every_kind_of_the_guide_is_a_service_in_json_and_xml(intake: httpx.AsyncClient) -> None:
    guide = load_guide(SEED_GUIDE)
    services = (await intake.get(f"{BASE}/services.json")).json()
    assert [s["service_code"] for s in services] == [k.code for k in guide.kinds]
    lamp = services[0]
    assert lamp == {
        "service_code": "K0101",
        "service_name": "路灯故障",
        "description": guide.kinds[0].description,
        "metadata": True,
        "type": "realtime",
        "keywords": ",".join(guide.kinds[0].keywords),
        "group": guide.category_by_code[guide.kinds[0].category].name,
    }
    single_type = next(k for k in guide.kinds if len(k.request_types) == 1 and k.transfer_to is None)
    assert next(s for s in services if s["service_code"] == single_type.code)["metadata"] is False
    root = xml(await intake.get(f"{BASE}/services.xml"))
    assert root.tag == "services" and len(root.findall("service")) == len(guide.kinds)
    first = root.find("service")
    assert first is not None
    assert first.findtext("service_code") == "K0101" and first.findtext("metadata") == "true"
    assert first.findtext("group") == lamp["group"]


async def test_a_service_definition_offers_the_kinds_request_types_and_an_emergency_notice(
    intake: httpx.AsyncClient,
) -> None:
    definition = (await intake.get(f"{BASE}/services/K0101.json")).json()
    [request_type] = definition["attributes"]
    assert definition["service_code"] == "K0101"
    assert request_type["code"] == "request_type" and request_type["datatype"] == "singlevaluelist"
    assert request_type["variable"] is True and request_type["required"] is False and request_type["order"] == 1
    assert request_type["values"] == [{"key": "complain", "name": "投诉"}, {"key": "help", "name": "求助"}]
    guide = load_guide(SEED_GUIDE)
    fire = next(k for k in guide.kinds if k.transfer_to)
    notices = (await intake.get(f"{BASE}/services/{fire.code}.json")).json()["attributes"]
    notice = next(a for a in notices if a["code"] == "emergency_notice")
    assert notice["variable"] is False and fire.transfer_to in notice["description"]
    root = xml(await intake.get(f"{BASE}/services/K0101.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "K0101"
    keys = [v.findtext("key") for v in root.findall("attributes/attribute/values/value")]
    assert keys == ["complain", "help"]
    assert root.findtext("attributes/attribute/variable") == "true"


async def test_unknown_services_formats_and_jurisdictions_are_404_errors(intake: httpx.AsyncClient) -> None:
    assert error_descriptions(await intake.get(f"{BASE}/services/NOPE.json"), 404) == ["service_code NOPE not found"]
    assert error_descriptions(await intake.get(f"{BASE}/services/NOPE.xml"), 404) == ["service_code NOPE not found"]
    assert "format" in error_descriptions(await intake.get(f"{BASE}/services.html"), 404)[0]
    other = await intake.get(f"{BASE}/services.xml", params={"jurisdiction_id": "elsewhere"})
    assert error_descriptions(other, 404) == ["jurisdiction_id elsewhere not found"]
    ours = await intake.get(f"{BASE}/services.json", params={"jurisdiction_id": "jiesu"})
    assert ours.status_code == 200


async def test_discovery_names_the_endpoint_and_its_formats(intake: httpx.AsyncClient) -> None:
    document = (await intake.get(f"{BASE}/discovery.json")).json()
    [endpoint] = document["endpoints"]
    assert endpoint["url"] == "http://test/open311/v2" and endpoint["specification"].endswith("GeoReport_v2")
    assert endpoint["formats"] == ["text/xml", "application/json"] and endpoint["type"] == "test"
    assert document["contact"] and document["key_service"]
    root = xml(await intake.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]


async def test_a_posted_request_is_an_ordinary_hotline_report(intake: httpx.AsyncClient, tmp_path: Path) -> None:
    answer = await intake.post(f"{BASE}/requests.json", data=FORM | {"account_id": "acct-9"})
    assert answer.status_code == 200
    [created] = answer.json()
    assert created["token"].startswith("JS") and created["account_id"] == "acct-9"
    assert created["service_notice"] == "此类诉求一般在7个工作日内办结"
    report = (await intake.get(f"/v1/reports/{created['service_request_id']}")).json()
    assert report["source"] == "hotline" and report["external_id"].startswith("open311:")
    assert report["case_number"] == created["token"]
    assert report["content"] == FORM["description"]
    assert report["subject"] == "路灯故障（投诉）"
    assert report["kind_code"] == "K0101"
    assert report["address"] == FORM["address_string"]
    assert report["location"] == {"lat": 39.91, "lon": 116.31}
    assert report["reporter"] == {"name": "张*", "phone": "138****1234", "id_number": None}
    assert report["attachments"] == [FORM["media_url"]]
    assert stored(tmp_path) == (1, 1)


async def test_attributes_the_service_does_not_define_are_ignored(intake: httpx.AsyncClient) -> None:
    form = FORM | {"service_code": "K0102", "attribute[request_type]": "help", "attribute[floor]": "3"}
    created = (await intake.post(f"{BASE}/requests.json", data=form)).json()[0]
    report = (await intake.get(f"/v1/reports/{created['service_request_id']}")).json()
    assert report["subject"] == "井盖缺失破损（求助）"
    only_one_type = FORM | {"service_code": "K0202", "attribute[request_type]": "anything"}
    assert (await intake.post(f"{BASE}/requests.json", data=only_one_type)).status_code == 200


async def test_a_request_posted_for_xml_is_answered_in_xml(intake: httpx.AsyncClient) -> None:
    form = FORM | {"description": "井盖没了"} | {"service_code": "K0102"}
    form.pop("attribute[request_type]")
    root = xml(await intake.post(f"{BASE}/requests.xml", data=form))
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None and request.findtext("service_request_id")
    assert (request.findtext("token") or "").startswith("JS")


async def test_a_retried_post_returns_the_first_request_and_stores_nothing_new(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    first = await intake.post(f"{BASE}/requests.json", data=FORM)
    again = await intake.post(f"{BASE}/requests.json", data=FORM)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(tmp_path) == (1, 1)
    other_device = await intake.post(f"{BASE}/requests.json", data=FORM | {"device_id": "phone-8"})
    assert other_device.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]
    assert stored(tmp_path) == (2, 2)


async def test_an_idempotency_key_makes_a_retry_the_same_and_a_reuse_a_conflict(
    intake: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = {"Idempotency-Key": "order-2026-0001"}
    first = await intake.post(f"{BASE}/requests.json", data=FORM, headers=headers)
    retry = await intake.post(f"{BASE}/requests.json", data=FORM, headers=headers)
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    clash = await intake.post(f"{BASE}/requests.json", data=FORM | {"description": "另一件事"}, headers=headers)
    [description] = error_descriptions(clash, 409)
    assert "Idempotency-Key" in description and first.json()[0]["token"] in description
    bad_key = await intake.post(f"{BASE}/requests.json", data=FORM, headers={"Idempotency-Key": "has a space"})
    assert "Idempotency-Key" in error_descriptions(bad_key, 400)[0]
    assert stored(tmp_path) == (1, 1)


async def test_the_api_key_may_come_in_the_query_as_the_public_swagger_file_has_it(intake: httpx.AsyncClient) -> None:
    del intake.headers["Authorization"]
    form = {k: v for k, v in FORM.items() if k != "api_key"}
    answer = await intake.post(f"{BASE}/requests.json", params={"api_key": KEY}, data=form)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"data": {k: v for k, v in FORM.items() if k != "api_key"}}, "api_key was not provided"),
        ({"data": FORM | {"api_key": "guessed"}}, "api_key is invalid"),
        ({"data": FORM | {"api_key": ""}, "params": {"api_key": "guessed"}}, "api_key is invalid"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_missing_or_wrong_api_key_is_401_and_stores_nothing(
    intake: httpx.AsyncClient, tmp_path: Path, where: dict[str, Any], expected: str, fmt: str
) -> None:
    del intake.headers["Authorization"]
    answer = await intake.post(f"{BASE}/requests.{fmt}", **where)
    assert error_descriptions(answer, 401) == [expected]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(tmp_path) == (0, 0)


async def test_a_key_whose_role_may_not_post_is_403(tmp_path: Path) -> None:
    async with open311_app(tmp_path) as (app, client):
        analyst = (await credential(app, "analyst"))["Authorization"].removeprefix("Bearer ")
        del client.headers["Authorization"]
        answer = await client.post(f"{BASE}/requests.json", data=FORM | {"api_key": analyst})
        assert error_descriptions(answer, 403) == ["the analyst role may not do this (open311:post)"]
    assert stored(tmp_path) == (0, 0)


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in FORM.items() if k not in names}


@pytest.mark.parametrize(
    ("form", "status", "mentions"),
    [
        (_without("service_code"), 400, "service_code"),
        (FORM | {"service_code": "K9999"}, 404, "service_code K9999 not found"),
        (_without("long", "address_string"), 400, "lat and long"),
        (_without("lat", "long", "address_string"), 400, "a location is required"),
        (_without("lat", "long", "address_string") | {"address_id": "A-17"}, 400, "address_id is not supported"),
        (FORM | {"lat": "91"}, 400, "lat"),
        (FORM | {"long": "abc"}, 400, "long"),
        (FORM | {"lat": "nan"}, 400, "lat"),
        (FORM | {"phone": "call me"}, 400, "phone"),
        (FORM | {"email": "not-an-address"}, 400, "email"),
        (FORM | {"media_url": "not a url"}, 400, "media_url"),
        (FORM | {"description": "字" * 4001}, 400, "description"),
        (FORM | {"attribute[request_type]": "praise"}, 400, "attribute[request_type]: choose one of complain, help"),
        (FORM | {"colour": "red"}, 400, "colour"),
        (FORM | {"jurisdiction_id": "elsewhere"}, 404, "jurisdiction_id elsewhere not found"),
    ],
)
async def test_bad_requests_are_refused_with_the_field_named_and_nothing_stored(
    intake: httpx.AsyncClient, tmp_path: Path, form: dict[str, str], status: int, mentions: str
) -> None:
    for fmt in ("json", "xml"):
        answer = await intake.post(f"{BASE}/requests.{fmt}", data=form)
        assert any(mentions in d for d in error_descriptions(answer, status)), answer.text
    assert stored(tmp_path) == (0, 0)


async def test_every_bad_field_is_named_at_once(intake: httpx.AsyncClient) -> None:
    answer = await intake.post(f"{BASE}/requests.json", data=FORM | {"lat": "x", "phone": "?"})
    assert sorted(d.split(":")[0] for d in error_descriptions(answer, 400)) == ["lat", "phone"]


async def test_a_body_that_is_not_a_form_is_415_and_a_repeated_field_400(intake: httpx.AsyncClient) -> None:
    as_json = await intake.post(f"{BASE}/requests.json", json=FORM)
    assert "application/x-www-form-urlencoded" in error_descriptions(as_json, 415)[0]
    twice = await intake.post(
        f"{BASE}/requests.json",
        content=b"api_key=" + KEY.encode() + b"&service_code=K0101&service_code=K0102&address_string=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert error_descriptions(twice, 400) == ["service_code was sent more than once"]


async def test_a_method_the_path_does_not_have_is_405_with_allow(intake: httpx.AsyncClient) -> None:
    answer = await intake.delete(f"{BASE}/requests.xml")
    assert error_descriptions(answer, 405) == ["DELETE is not allowed here"]
    assert answer.headers["allow"] == "GET, POST"
    assert (await intake.post(f"{BASE}/services.json")).headers["allow"] == "GET"
