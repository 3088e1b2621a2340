"""The roll-ups equal a full recomputation: random case histories in, every rate at every level and period out."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.evaluation.models import EvaluatedCase
from shared import topics
from shared.events import CloudEvent
from tests.services.evaluation.feed import TZ, Case, Evaluation, evaluation_app

KINDS = {
    "K0101": ("C01", "DEPT-UM"),
    "K0102": ("C01", "DEPT-UM"),
    "K0501": ("C05", "DEPT-EE"),
    "K0601": ("C06", "DEPT-TR"),
    "K0202": ("C02", "ST-110199001"),
}
PLACES = [
    ("110199001", "110199001001", "11019900100101"),
    ("110199001", "110199001001", "11019900100102"),
    ("110199001", "110199001002", "11019900100201"),
    ("110199002", "110199002001", "11019900200101"),
    (None, None, None),
]
COUNTED = (
    "dispatched",
    "signed",
    "signed_on_time",
    "completed",
    "completed_on_time",
    "callbacks",
    "callbacks_counted",
    "resolved",
    "satisfied",
    "basically_satisfied",
    "not_unit_fault",
    "unreachable",
    "reopened",
    "returned",
    "returned_without_cause",
    "extended",
    "overdue",
    "closed",
)
# rate -> (numerator counters, denominator counter), as the definitions state them
RATES = {
    "response_rate": (("signed",), "dispatched"),
    "resolution_rate": (("resolved",), "callbacks_counted"),
    "satisfaction_rate": (("satisfied", "basically_satisfied"), "callbacks_counted"),
    "on_time_sign_rate": (("signed_on_time",), "signed"),
    "on_time_completion_rate": (("completed_on_time",), "completed"),
    "return_rate": (("returned",), "dispatched"),
    "reopen_rate": (("reopened",), "callbacks_counted"),
    "extension_rate": (("extended",), "dispatched"),
    "overdue_rate": (("overdue",), "dispatched"),
}
API_COUNT = {"callbacks": "feedback"}


@dataclass
class Assignment:
    """The truth about one dispatch of a case, kept by the test as it drives the events."""

    unit: str
    kind: str
    category: str
    day: date
    places: dict[str, str | None]
    counts: Counter[str] = field(default_factory=Counter)
    hours: list[float] = field(default_factory=list)


@dataclass
class Rating:
    unit: str
    day: date
    score: int


class Driver:
    """Random case histories, sent as dispatch would send them, with the truth written down alongside."""

    def __init__(self, evaluation: Evaluation, seed: int) -> None:
        self.evaluation = evaluation
        self.rng = random.Random(seed)
        self.truth: list[Assignment] = []
        self.ratings: list[Rating] = []

    async def send(self, event: CloudEvent) -> None:
        await self.evaluation.send(event)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.evaluation.client.post(path, json=body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def _place(self, case: Case) -> dict[str, str | None]:
        return {"street": case.street, "community": case.community, "grid": case.grid}

    async def _dispatch(self, case: Case, at: datetime, *, again: bool) -> Assignment:
        await self.send(case.dispatched(at, redispatched=again))
        assignment = Assignment(case.unit, case.kind, KINDS[case.kind][0], at.astimezone(TZ).date(), self._place(case))
        assignment.counts["dispatched"] += 1
        self.truth.append(assignment)
        return assignment

    async def one_case(self, start: datetime) -> None:
        rng = self.rng
        kind = rng.choice(list(KINDS))
        street, community, grid = rng.choice(PLACES)
        case = Case(
            kind=kind, category=KINDS[kind][0], unit=KINDS[kind][1], street=street, community=community, grid=grid
        )
        case.urgency = rng.choice(["normal", "normal", "urgent"])
        await self.send(case.judged(start))
        at = start + timedelta(minutes=rng.randint(1, 90))
        now = await self._dispatch(case, at, again=False)
        if rng.random() < 0.2:
            at = await self._return_and_redispatch(case, now, at)
            now = self.truth[-1]
        if rng.random() < 0.1:
            return  # never signed
        hours = rng.choice([rng.uniform(0.05, 6), rng.uniform(6, 120), rng.uniform(120, 900)])
        dispatched_at = at
        on_time = rng.random() < 0.8
        await self.send(case.signed(dispatched_at + timedelta(hours=hours * 0.1), on_time=on_time))
        now.counts["signed"] += 1
        now.counts["signed_on_time"] += on_time
        middle = dispatched_at + timedelta(hours=hours * 0.5)
        if rng.random() < 0.2:
            await self.send(case.event(topics.CASE_EXTENSION_REQUESTED, middle, "extension_requested", working_days=3))
            granted = rng.random() < 0.6
            await self.send(case.event(topics.CASE_EXTENSION_DECIDED, middle, "in_progress", granted=granted))
            now.counts["extended"] += granted
        if rng.random() < 0.15:
            await self.send(case.event(topics.CASE_OVERDUE, middle, deadline="sign", timer="sign_overdue"))
            for _ in range(2):  # counted once, whatever the timers send
                await self.send(case.event(topics.CASE_OVERDUE, middle, deadline="complete", timer="complete_overdue"))
            now.counts["overdue"] += 1
        if rng.random() < 0.1:
            return  # still in progress
        on_time = rng.random() < 0.75
        at = dispatched_at + timedelta(hours=hours)
        await self.send(case.completed(at, on_time=on_time))
        now.counts["completed"] += 1
        now.counts["completed_on_time"] += on_time
        now.hours.append(hours)
        await self._call_back(case, now, at)

    async def _return_and_redispatch(self, case: Case, now: Assignment, at: datetime) -> datetime:
        rng = self.rng
        if rng.random() < 0.5:
            at += timedelta(minutes=20)
            on_time = rng.random() < 0.5
            await self.send(case.signed(at, on_time=on_time))
            now.counts["signed"] += 1
            now.counts["signed_on_time"] += on_time
        at += timedelta(hours=rng.uniform(0.5, 30))
        await self.send(case.returned(at))
        now.counts["returned"] += 1
        if rng.random() < 0.4:
            now.counts["returned_without_cause"] += 1  # the centre sends it back to the same unit
        else:
            kind = rng.choice([k for k in KINDS if KINDS[k][1] != case.unit])
            case.kind, case.category, case.unit = kind, KINDS[kind][0], KINDS[kind][1]
        at += timedelta(hours=rng.uniform(0.5, 40))
        await self._dispatch(case, at, again=True)
        return at

    async def _call_back(self, case: Case, now: Assignment, at: datetime) -> None:
        rng = self.rng
        for _round in range(3):
            draw = rng.random()
            if draw < 0.1:
                return  # not called back yet
            at += timedelta(hours=rng.uniform(2, 30))
            if draw < 0.2:
                for _ in range(self.evaluation.settings.callback_max_attempts):
                    await self.post("/v1/callback-attempts", {"case_id": case.case_id})
                now.counts["unreachable"] += 1
                now.counts["closed"] += 1
                await self.send(case.event(topics.CASE_CALLED_BACK, at, "called_back"))
                await self.send(case.event(topics.CASE_CLOSED, at, "closed"))
                return
            resolved = rng.random() < 0.7
            satisfaction = rng.choice(["satisfied", "satisfied", "basically_satisfied", "dissatisfied"])
            content = resolved and satisfaction != "dissatisfied"
            fault = "not_unit" if not content and rng.random() < 0.3 else "unit"
            body: dict[str, Any] = {"case_id": case.case_id, "resolved": resolved, "satisfaction": satisfaction}
            if fault == "not_unit":
                body |= {"fault": "not_unit", "fault_reason": "诉求超出法定范围"}
            answer = await self.post("/v1/feedback", body)
            now.counts["callbacks"] += 1
            if fault == "unit" or content:
                now.counts["callbacks_counted"] += 1
                now.counts["resolved"] += resolved
                if satisfaction != "dissatisfied":
                    now.counts[satisfaction] += 1
            else:
                now.counts["not_unit_fault"] += 1
            await self.send(case.event(topics.CASE_CALLED_BACK, at, "called_back"))
            if answer["verdict"] == "closed":
                assert content or fault == "not_unit"
                now.counts["closed"] += 1
                await self.send(case.event(topics.CASE_CLOSED, at, "closed"))
                return
            now.counts["reopened"] += 1
            await self.send(case.reopened(at))
            at += timedelta(hours=rng.uniform(1, 48))
            await self.send(case.signed(at))  # a reopened round's sign and completion are not counted again
            at += timedelta(hours=rng.uniform(1, 48))
            await self.send(case.completed(at, on_time=False))

    async def rate(self, at: datetime) -> None:
        unit = self.rng.choice(["DEPT-UM", "DEPT-EE", "DEPT-TR"])
        score = self.rng.randint(1, 5)
        event = CloudEvent(
            type=topics.WHISTLE_RATED,
            source="/jiesu/dispatch",
            subject="whistle",
            time=at,
            data={"case_id": "whistle", "unit_code": unit, "score": score, "status": "in_progress"},
        )
        await self.send(event)
        self.ratings.append(Rating(unit, at.astimezone(TZ).date(), score))


def period_of(day: date, grouping: str) -> str:
    if grouping == "day":
        return day.isoformat()
    if grouping == "week":
        iso = day.isocalendar()
        return f"{iso[0]}-W{iso[1]:02d}"
    if grouping == "month":
        return f"{day.year}-{day.month:02d}"
    if grouping == "quarter":
        return f"{day.year}-Q{(day.month + 2) // 3}"
    return "all"


def codes_of(a: Assignment, level: str) -> list[str]:
    if level == "department":
        return [a.unit]
    if level in ("street", "community", "grid"):
        code = a.places[level]
        return [code] if code else []
    return {"category": [a.category], "kind": [a.kind], "city": ["city"]}[level]


@dataclass
class Expected:
    counts: Counter[str] = field(default_factory=Counter)
    hours: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)


def recompute(
    truth: Iterable[Assignment],
    ratings: Iterable[Rating],
    *,
    level: str,
    grouping: str,
    within: tuple[date, date] | None = None,
) -> dict[tuple[str, str], Expected]:
    """Every group's counters from the per-case truth, with no roll-up involved."""
    found: dict[tuple[str, str], Expected] = defaultdict(Expected)

    def inside(day: date) -> bool:
        return within is None or within[0] <= day <= within[1]

    for a in truth:
        if not inside(a.day):
            continue
        for code in codes_of(a, level):
            group = found[(code, period_of(a.day, grouping))]
            group.counts.update(a.counts)
            group.hours.extend(a.hours)
    if level in ("department", "city"):
        for r in ratings:
            if inside(r.day):
                found[(r.unit if level == "department" else "city", period_of(r.day, grouping))].ratings.append(r.score)
    return dict(found)


def check_row(row: dict[str, Any], expected: Expected) -> None:
    where = f"{row['level']} {row['unit_code']} {row['period']}"
    for name in COUNTED:
        if name in row or name in API_COUNT:
            assert row[API_COUNT.get(name, name)] == expected.counts[name], f"{where}: {name}"
    for name, (numerator, denominator) in RATES.items():
        top = sum(expected.counts[n] for n in numerator)
        bottom = expected.counts[denominator]
        value = None if bottom == 0 else round(top / bottom, 4)
        assert row[name] == {"value": value, "numerator": top, "denominator": bottom}, f"{where}: {name}"
    handling = row["handling_time"]
    assert handling["cases"] == len(expected.hours), where
    if expected.hours:
        assert handling["mean_hours"] == pytest.approx(sum(expected.hours) / len(expected.hours), abs=0.011)
        ordered = sorted(expected.hours)
        for q, name in ((0.5, "median"), (0.9, "p90")):
            exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
            bucket = handling[name]
            assert bucket["bucket_from_hours"] <= exact, f"{where}: {name} {exact} below {bucket}"
            assert bucket["bucket_to_hours"] is None or exact < bucket["bucket_to_hours"], f"{where}: {name}"
            assert bucket["bucket_from_hours"] <= bucket["hours"] <= (bucket["bucket_to_hours"] or math.inf)
    ratings = row["bottom_up_rating"]
    assert ratings["ratings"] == len(expected.ratings), where
    if expected.ratings:
        assert ratings["mean"] == round(sum(expected.ratings) / len(expected.ratings), 2)


@pytest.fixture(params=["sqlite", "postgres"])
async def driven(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[Driver]:
    url = await pg_databases() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    async with evaluation_app(url, tmp_path, callback_max_attempts=2) as evaluation:
        driver = Driver(evaluation, seed=20261126)
        base = datetime(2026, 1, 20, tzinfo=UTC)
        for n in range(240):
            # spread over four months, some just before local midnight so UTC and local days differ
            start = base + timedelta(days=n * 110 / 240, hours=driver.rng.choice([2, 15.9, 16.1, 23]))
            await driver.one_case(start)
            if n % 8 == 0:
                await driver.rate(start + timedelta(hours=5))
        yield driver


LEVELS = ("department", "street", "community", "grid", "category", "kind", "city")
GROUPINGS = ("day", "week", "month", "quarter", "all")


RANGES = [("2026-02-10", "2026-04-20"), ("2026-03-01", "2026-03-31"), ("2026-01-25", "2026-01-31")]


async def compare(driver: Driver, params: dict[str, str], within: tuple[date, date] | None = None) -> int:
    page = (await driver.evaluation.client.get("/v1/metrics", params=params)).json()
    expected = recompute(
        driver.truth, driver.ratings, level=params["level"], grouping=params["grouping"], within=within
    )
    rows = {(row["unit_code"], row["period"]): row for row in page["items"]}
    assert set(rows) == set(expected), params
    for key, row in rows.items():
        check_row(row, expected[key])
    return len(rows)


async def test_every_rate_at_every_level_and_period_equals_a_full_recomputation(driven: Driver) -> None:
    assert sum(a.counts["returned_without_cause"] for a in driven.truth) > 0
    assert sum(a.counts["not_unit_fault"] for a in driven.truth) > 0
    assert sum(a.counts["unreachable"] for a in driven.truth) > 0
    compared = 0
    for level in LEVELS:
        for grouping in GROUPINGS:
            compared += await compare(driven, {"level": level, "grouping": grouping})
    # ranges whose edges cut through months: whole months come from month rows, the edges from day rows
    for date_from, date_to in RANGES:
        within = (date.fromisoformat(date_from), date.fromisoformat(date_to))
        for level in ("department", "grid", "kind"):
            for grouping in ("month", "all", "week"):
                params = {"level": level, "grouping": grouping, "from": date_from, "to": date_to}
                compared += await compare(driven, params, within)
    assert compared > 500
    # and the per-case rows the service keeps add up to the same counters
    async with driven.evaluation.app.state.runtime.sessions() as session:
        cases = list((await session.execute(select(EvaluatedCase))).scalars())
    stored: Counter[str] = Counter()
    for case in cases:
        for assignment in case.assignments:
            stored.update({k: int(v) for k, v in assignment["counters"].items() if k in COUNTED})
    truth: Counter[str] = Counter()
    for a in driven.truth:
        truth.update(a.counts)
    assert {k: stored[k] for k in COUNTED} == {k: truth[k] for k in COUNTED}
