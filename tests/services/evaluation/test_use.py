"""The "use" step: hot spots across sources and wording, repeat complaints, 每月一题 and what the guide should learn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import topics
from shared.events import utcnow
from tests.services.evaluation.feed import Case, Evaluation, evaluation_app

UNTIL = datetime(2026, 11, 20, 12, tzinfo=UTC)
KINDS = {"K0101": ("C01", "DEPT-UM"), "K0102": ("C01", "DEPT-UM"), "K0201": ("C02", "ST-110199001")}
KINDS |= {"K0202": ("C02", "ST-110199001"), "K0301": ("C03", "DEPT-HC"), "K0501": ("C05", "DEPT-EE")}
KINDS |= {"K0601": ("C06", "DEPT-TR")}


@pytest.fixture
async def evaluation(tmp_path: Path) -> AsyncIterator[Evaluation]:
    async with evaluation_app(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", tmp_path) as running:
        yield running


def case(kind: str, **place: Any) -> Case:
    category, unit = KINDS[kind]
    return Case(kind=kind, category=category, unit=unit, **place)


async def reported(
    evaluation: Evaluation, kind: str, at: datetime, *, address: str | None = None, lat: float | None = None,
    lon: float | None = None, dispatch: bool = True, **place: Any,
) -> Case:  # fmt: skip
    """A report as intake announces it and the case as dispatch judges (and dispatches) it."""
    made = case(kind, **place)
    await evaluation.send(made.report(at, address=address, lat=lat, lon=lon))
    await evaluation.send(made.judged(at))
    if dispatch:
        await evaluation.send(made.dispatched(at + timedelta(minutes=5)))
    return made


async def test_reports_of_one_place_and_problem_cluster_across_sources_and_wording(evaluation: Evaluation) -> None:
    grid = "11019900100101"
    earlier = await reported(evaluation, "K0202", UNTIL - timedelta(days=9), source="grid", grid=grid)
    mess = [
        await reported(evaluation, "K0202", UNTIL - timedelta(days=3), source="grid", grid=grid),
        await reported(evaluation, "K0202", UNTIL - timedelta(days=2), address="阳光小区 5号楼", grid=grid),
        await reported(evaluation, "K0202", UNTIL - timedelta(days=2, hours=-1), address="阳光小区5号楼", grid=grid),
        await reported(evaluation, "K0201", UNTIL - timedelta(days=1), source="town", urgency="urgent", grid=grid),
    ]
    await reported(evaluation, "K0501", UNTIL - timedelta(days=1), grid=grid)  # another category, same grid
    points = [(39.9104, 116.4008), (39.9108, 116.4003), (39.9105, 116.4015)]  # one 200 m square, no grid
    lights = [
        await reported(evaluation, "K0101", UNTIL - timedelta(days=n + 1), lat=lat, lon=lon, grid=None)
        for n, (lat, lon) in enumerate(points)
    ]
    await reported(evaluation, "K0102", UNTIL - timedelta(hours=5), lat=39.9180, lon=116.4000, grid=None)  # 800 m
    await reported(evaluation, "K0101", UNTIL + timedelta(days=1), lat=39.9104, lon=116.4008, grid=None)  # next day
    page = (await evaluation.client.get("/v1/hotspots", params={"until": UNTIL.isoformat()})).json()
    assert "GPS square of 200 m" in page["clustering"] and "growth_factor" in page["formula"]
    assert (page["window_from"], page["window_to"]) == ("2026-11-14T00:00:00+08:00", "2026-11-21T00:00:00+08:00")
    rubbish, light = page["items"]
    assert sorted(rubbish["case_ids"]) == sorted(c.case_id for c in mess)
    assert earlier.case_id not in rubbish["case_ids"]
    assert (rubbish["kind_code"], rubbish["kind_codes"], rubbish["place_code"]) == (
        "K0202",
        {"K0202": 3, "K0201": 1},
        "11019900100101",
    )
    assert rubbish["sources"] == {"hotline": 2, "grid": 1, "town": 1}
    heat = rubbish["heat"]
    # 4 reports against 1 the week before: growth 3, capped at 2 → ×2; the two hotline calls from one address
    # count as one reporter: 3 of 4 → ×0.875; one urgent report: severity (1 + 1 + 1 + 1.5) / 4
    assert (heat["reports"], heat["previous_reports"], heat["growth"], heat["growth_factor"]) == (4, 1, 3.0, 2.0)
    assert (heat["reporters"], heat["reporter_factor"], heat["severity"]) == (3, 0.875, 1.125)
    assert heat["index"] == round(4 * 2.0 * 0.875 * 1.125, 2)
    assert sorted(light["case_ids"]) == sorted(c.case_id for c in lights)
    assert light["centre"] is not None and light["radius_m"] < 200 and light["place_code"].startswith("gps200m:")
    assert light["heat"]["index"] < heat["index"]
    later = await evaluation.client.get("/v1/hotspots", params={"until": (UNTIL + timedelta(days=1)).isoformat()})
    assert [len(spot["case_ids"]) for spot in later.json()["items"]] == [4, 4]  # the next day's lamp joins
    naive = await evaluation.client.get("/v1/hotspots", params={"until": "2026-11-20T12:00:00"})
    assert naive.status_code == 400 and naive.json()["errors"][0]["field"] == "until"


async def test_the_same_matter_from_the_same_address_is_a_repeat_complaint(evaluation: Evaluation) -> None:
    start = utcnow() - timedelta(days=20)
    first = await reported(evaluation, "K0301", start, address="幸福路12号3单元")
    await reported(evaluation, "K0301", start + timedelta(days=5), address="幸福路 12 号 3 单元")
    await reported(evaluation, "K0101", start + timedelta(days=6), address="幸福路12号3单元")  # another matter
    await evaluation.send(first.signed(start + timedelta(days=1)))
    await evaluation.send(first.completed(start + timedelta(days=2)))
    closed = await evaluation.client.post(
        "/v1/feedback", json={"case_id": first.case_id, "resolved": True, "satisfaction": "satisfied"}
    )
    assert closed.status_code == 201 and closed.json()["verdict"] == "closed"
    again = await reported(evaluation, "K0301", utcnow() + timedelta(hours=1), address="幸福路12号，3单元")
    for days in (0, 2):
        await reported(evaluation, "K0202", start + timedelta(days=days), lat=39.91234, lon=116.40321, source="grid")
    until = (utcnow() + timedelta(hours=2)).isoformat()
    page = (await evaluation.client.get("/v1/repeat-complaints", params={"until": until})).json()
    assert "caller pseudonym" in page["rule"]
    by_kind = {item["kind_code"]: item for item in page["items"]}
    assert set(by_kind) == {"K0301", "K0202"}
    flat = by_kind["K0301"]
    assert (flat["cases"], flat["after_closing"], flat["address"]) == (3, 1, "幸福路12号3单元")
    assert flat["members"][-1]["case_id"] == again.case_id and flat["place"].startswith("addr:")
    assert by_kind["K0202"]["place"] == "gps:39.9123,116.4032" and by_kind["K0202"]["cases"] == 2
    three = await evaluation.client.get("/v1/repeat-complaints", params={"until": until, "min_cases": 3})
    assert [item["kind_code"] for item in three.json()["items"]] == ["K0301"]


async def test_the_same_caller_about_the_same_matter_is_flagged_for_the_unit_and_the_centre(
    evaluation: Evaluation,
) -> None:
    start = utcnow() - timedelta(days=10)
    caller, other = "a" * 64, "b" * 64

    async def call(kind: str, at: datetime, key: str, address: str) -> Case:
        made = case(kind)
        await evaluation.send(made.report(at, address=address))
        await evaluation.send(made.event(topics.CASE_JUDGED, at, "judged", decision="dispatch", caller_key=key))
        await evaluation.send(made.dispatched(at + timedelta(minutes=5)))
        return made

    first = await call("K0301", start, caller, "幸福路12号")
    second = await call("K0301", start + timedelta(days=3), caller, "光明街8号")  # another address, same caller
    await call("K0301", start + timedelta(days=4), other, "和平里1号")  # same matter, another caller
    await call("K0101", start + timedelta(days=5), caller, "光明街8号")  # same caller, another matter
    until = (utcnow() + timedelta(hours=1)).isoformat()
    page = (await evaluation.client.get("/v1/repeat-complaints", params={"until": until})).json()
    assert [(item["rule"], item["kind_code"], item["cases"]) for item in page["items"]] == [("same_caller", "K0301", 2)]
    group = page["items"][0]
    assert [m["case_id"] for m in group["members"]] == [first.case_id, second.case_id]
    assert group["place"] == f"caller:{caller[:12]}" and group["units"] == ["DEPT-HC"]
    assert caller not in str(page)  # only the start of the pseudonym is shown
    mine = await evaluation.client.get("/v1/repeat-complaints", params={"until": until, "unit": "DEPT-HC"})
    theirs = await evaluation.client.get("/v1/repeat-complaints", params={"until": until, "unit": "DEPT-UM"})
    assert (len(mine.json()["items"]), theirs.json()["items"], mine.json()["unit"]) == (1, [], "DEPT-HC")
    view = (await evaluation.client.get(f"/v1/evaluations/{second.case_id}")).json()
    assert view["repeats"] == [
        {"rule": "same_caller", "repeat_of": [first.number], "window_days": evaluation.settings.repeat_window_days}
    ]
    assert (await evaluation.client.get(f"/v1/evaluations/{first.case_id}")).json()["repeats"] == []


async def test_the_monthly_issue_list_ranks_problems_with_their_evidence(evaluation: Evaluation) -> None:
    october = datetime(2026, 10, 5, 2, tzinfo=UTC)
    for n in range(2):
        await reported(evaluation, "K0202", october - timedelta(days=10 + n), grid="11019900100101")
    for n in range(6):
        street = ("110199001", "110199002")[n % 2]
        await reported(evaluation, "K0202", october + timedelta(days=n), street=street, grid=f"1101990010010{n % 2}")
    for n in range(5):  # September
        await reported(evaluation, "K0101", october - timedelta(days=8 + n), dispatch=False)
    lamps = [await reported(evaluation, "K0101", october + timedelta(days=n)) for n in range(5)]
    for lamp in lamps[:2]:
        await evaluation.send(lamp.signed(october + timedelta(days=6)))
        await evaluation.send(lamp.completed(october + timedelta(days=7)))
        unhappy = {"case_id": lamp.case_id, "resolved": False, "satisfaction": "dissatisfied"}
        assert (await evaluation.client.post("/v1/feedback", json=unhappy)).status_code == 201
    await reported(evaluation, "K0501", october)  # too few to be an issue
    page = (await evaluation.client.get("/v1/monthly-issues", params={"month": "2026-10"})).json()
    assert "repeat_share" in page["formula"] and page["min_cases"] == 5
    rubbish, lamp = page["items"]
    assert (rubbish["rank"], rubbish["kind_code"], rubbish["cases"], rubbish["previous_cases"]) == (1, "K0202", 6, 2)
    assert rubbish["growth"] == 2.0 and rubbish["priority"] == 6 * 3 * 1 * 1
    assert rubbish["streets"] == 2 and {s["cases"] for s in rubbish["top_streets"]} == {3}
    assert rubbish["hotspots"] == 2 and len(rubbish["examples"]) == 5
    assert (lamp["kind_code"], lamp["cases"], lamp["previous_cases"], lamp["growth"]) == ("K0101", 5, 5, 0.0)
    assert lamp["satisfaction_rate"] == {"value": 0.0, "numerator": 0, "denominator": 2}
    assert lamp["priority"] == 5 * 1 * 2 * 1
    bad = await evaluation.client.get("/v1/monthly-issues", params={"month": "2026-13"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "month"


async def _returned(evaluation: Evaluation, made: Case, at: datetime, *, to: str, kind: str | None = None) -> None:
    await evaluation.send(made.returned(at, reason="职责不符"))
    made.kind = kind or made.kind
    made.category, made.unit = KINDS[made.kind][0], to
    await evaluation.send(made.dispatched(at + timedelta(hours=1), redispatched=True))


async def test_kinds_often_returned_or_re_routed_produce_guide_suggestions(evaluation: Evaluation) -> None:
    at = datetime(2026, 10, 10, 2, tzinfo=UTC)
    roads = [await reported(evaluation, "K0601", at) for _ in range(10)]
    for road in roads[:3]:  # re-judged: a manhole, not a road surface
        await _returned(evaluation, road, at + timedelta(days=1), to="DEPT-UM", kind="K0102")
    flats = [await reported(evaluation, "K0301", at) for _ in range(10)]
    for flat in flats[:3]:  # returned, but the centre sends it back to the same unit
        await _returned(evaluation, flat, at + timedelta(days=1), to="DEPT-HC")
    noise = [await reported(evaluation, "K0501", at) for _ in range(10)]
    for item in noise[:2]:  # returned, disputed, settled on another unit
        await evaluation.send(item.returned(at + timedelta(days=1)))
        await evaluation.send(item.event(topics.CASE_DISPUTED, at + timedelta(days=1), "disputed", level="street"))
        item.unit = "DEPT-UM"
        await evaluation.send(item.dispatched(at + timedelta(days=2), redispatched=True))
    for _ in range(10):
        await reported(evaluation, "K0101", at)
    for _ in range(2):  # the machine said K0101, a person dispatched it as K0102 from the triage queue
        lamp = case("K0101")
        await evaluation.send(lamp.judged(at, decision="triage"))
        lamp.kind = "K0102"
        await evaluation.send(lamp.dispatched(at + timedelta(hours=2)))
    page = (
        await evaluation.client.get("/v1/guide-suggestions", params={"from": "2026-10-01", "to": "2026-10-31"})
    ).json()
    assert "re-route rate" in page["rule"] and page["min_cases"] == 10
    found = {(s["kind_code"], s["suggestion"]): s for s in page["items"]}
    assert set(found) == {
        ("K0601", "refine_kind"),
        ("K0301", "clarify_duty"),
        ("K0501", "change_primary_unit"),
        ("K0501", "settle_responsibility"),
        ("K0101", "refine_kind"),
    }
    roads_hint = found[("K0601", "refine_kind")]
    assert roads_hint["to_kinds"] == {"K0102": 3} and roads_hint["reroute_rate"]["numerator"] == 3
    assert roads_hint["return_reasons"] == ["职责不符"] and len(roads_hint["examples"]) == 3
    assert "K0102" in roads_hint["text"]
    flats_hint = found[("K0301", "clarify_duty")]
    # each return sent back is dispatched again: 3 returns in 13 dispatches
    assert flats_hint["returned_without_cause"] == 3
    assert flats_hint["return_rate"] == {"value": 0.2308, "numerator": 3, "denominator": 13}
    assert found[("K0501", "change_primary_unit")]["to_units"] == {"DEPT-UM": 2}
    assert found[("K0501", "settle_responsibility")]["disputes"] == 2
    assert found[("K0101", "refine_kind")]["to_kinds"] == {"K0102": 2}
    empty = await evaluation.client.get("/v1/guide-suggestions", params={"from": "2026-09-01", "to": "2026-09-30"})
    assert empty.json()["items"] == []
