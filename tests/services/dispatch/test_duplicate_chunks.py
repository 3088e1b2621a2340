"""Duplicates (合并) found by the chunk's one query merge exactly as judging the reports one at a time does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import trail
from services.dispatch.models import Case, CaseTask, Timer, messaging
from tests.services.dispatch.chunking import (
    COURT,
    GARBAGE,
    GAS,
    LIGHT,
    NOISE,
    NOW,
    Databases,
    in_chunks,
    one_at_a_time,
    report,
)


async def outcome(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """What users see of the judged reports: each case's decision and merge, tasks, timers, trail and events."""
    async with sessions() as session:
        cases = {
            c.id: (
                c.status,
                c.decision,
                c.merged_into,
                c.merged_cases,
                c.judge_reasons,
                c.kind_code,
                c.primary_unit,
                c.cooperating_units,
            )
            for c in (await session.execute(select(Case))).scalars()
        }
        trails = {}
        for case_id in cases:
            entries = await trail.entries_of(session, case_id)
            assert trail.verify(entries) == (True, None)
            trails[case_id] = [(e.action, e.from_status, e.to_status) for e in entries]
        tasks = sorted(
            (t.case_id, t.unit_code, t.role, t.status, t.checkin_deadline is not None)
            for t in (await session.execute(select(CaseTask))).scalars()
        )
        timers = sorted(
            (t.case_id, t.kind, t.unit_code or "") for t in (await session.execute(select(Timer))).scalars()
        )
        events = (
            await session.execute(
                select(messaging.outbox.c.aggregateid, messaging.outbox.c.type).order_by(messaging.outbox.c.seq)
            )
        ).all()
    return {"cases": cases, "trails": trails, "tasks": tasks, "timers": timers, "events": [tuple(e) for e in events]}


async def test_a_chunk_of_duplicates_merges_as_one_at_a_time_does(databases: Databases) -> None:
    noise_site = {"address": "西河大街8号", "reporter": {"phone": "13800000001"}}
    stored = [
        report(NOISE, at=NOW - timedelta(hours=2), **noise_site),
        report(LIGHT, at=NOW - timedelta(hours=100), location={"lat": 39.9100, "lon": 116.3100}),  # out of window
    ]
    chunk = [
        report(NOISE, at=NOW, address=" 西河大街8号 "),  # the stored noise case's address
        report(LIGHT, at=NOW + timedelta(minutes=1), location={"lat": 39.9104, "lon": 116.3100}),
        report(LIGHT, at=NOW + timedelta(minutes=2), location={"lat": 39.9112, "lon": 116.3100}),  # 90 m from it
        report(GARBAGE, at=NOW + timedelta(minutes=3), address="西河大街3号", reporter={"phone": "13900000002"}),
        report(GARBAGE, at=NOW + timedelta(minutes=4), address="西河大街99号", reporter={"phone": "139-0000-0002"}),
        report(GAS, at=NOW + timedelta(minutes=5), address="西河大街8号"),
        report(COURT, at=NOW + timedelta(minutes=6), address="西河大街8号"),
        report(
            NOISE,
            at=NOW + timedelta(minutes=7),
            source="town",
            location={"lat": 39.9300, "lon": 116.3300},
            requested_departments=["DEPT-TR", "DEPT-HC"],
        ),
        report(NOISE, at=NOW + timedelta(minutes=8), address="西河大街8号", reporter={"phone": "13700000003"}),
        report(NOISE, at=NOW + timedelta(minutes=9), location={"lat": 39.9301, "lon": 116.3301}),
    ]
    ctx, chunked = await databases()
    _, single = await databases()
    await in_chunks(stored, ctx, chunked, size=1)
    await in_chunks(chunk, ctx, chunked)
    await one_at_a_time(stored + chunk, ctx, single)

    got, expected = await outcome(chunked), await outcome(single)
    assert got == expected
    cases = got["cases"]
    merged_into = [cases[e.data["id"]][2] for e in chunk]
    noise, light = stored[0].data["id"], chunk[1].data["id"]
    garbage, town = chunk[3].data["id"], chunk[7].data["id"]
    assert merged_into == [noise, None, light, None, garbage, None, None, None, noise, town]
    assert [cases[e.data["id"]][1] for e in chunk] == [
        "merge",
        "dispatch",
        "merge",
        "dispatch",
        "merge",
        "transfer",
        "refuse",
        "dispatch",
        "merge",
        "merge",
    ]
    assert cases[noise][3] == [chunk[0].data["id"], chunk[8].data["id"]], "the stored case lists both duplicates"
    assert cases[stored[1].data["id"]][3] == [], "a case older than the window takes no duplicate"
    whistled = [(unit, role, due) for case_id, unit, role, _, due in got["tasks"] if case_id == town]
    assert whistled == [("DEPT-HC", "whistle", True), ("DEPT-TR", "whistle", True)]
    assert [t for t in got["timers"] if t[0] == town and t[1] == "checkin_missed"] == [
        (town, "checkin_missed", "DEPT-HC"),
        (town, "checkin_missed", "DEPT-TR"),
    ]


async def test_a_report_finds_the_case_it_repeats_behind_hundreds_of_open_cases_within_its_own_window(
    databases: Databases,
) -> None:
    # 202 open cases of the kind older than the one the reports repeat: the search looks the address up, it does not
    # walk the kind's open cases oldest first, so none of them hides the repeated case.
    early = [report(NOISE, at=NOW - timedelta(hours=70, minutes=i), address=f"南街{i}号") for i in range(5)]
    middle = [
        report(NOISE, at=NOW - timedelta(hours=60) + timedelta(minutes=i), address=f"北街{i}号") for i in range(197)
    ]
    repeated = report(NOISE, at=NOW - timedelta(hours=50), address="东湖路1号")
    chunk = [
        report(NOISE, at=NOW, address="东湖路1号"),
        report(NOISE, at=NOW, address="南街0号"),  # the early case is inside this report's 72 h
        report(NOISE, at=NOW + timedelta(hours=10), address="南街1号"),  # ... and outside this one's
        report(NOISE, at=NOW + timedelta(hours=10), address=" 东湖路1号\u3000"),  # blanks around it do not count
    ]
    ctx, chunked = await databases()
    _, single = await databases()
    await in_chunks([*early, *middle, repeated], ctx, chunked)
    await in_chunks(chunk, ctx, chunked)
    await one_at_a_time([*early, *middle, repeated, *chunk], ctx, single)

    got, expected = await outcome(chunked), await outcome(single)
    assert got["cases"] == expected["cases"]
    decisions = [(got["cases"][e.data["id"]][1], got["cases"][e.data["id"]][2]) for e in chunk]
    assert decisions == [
        ("merge", repeated.data["id"]),
        ("merge", early[0].data["id"]),
        ("dispatch", None),
        ("merge", repeated.data["id"]),
    ]
