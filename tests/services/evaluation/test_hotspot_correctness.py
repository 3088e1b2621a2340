"""The hot-spot counters equal a full recomputation: random reports (kinds changed, places late) in, hot spots out."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.evaluation.models import hotspot_counts, hotspot_reporters
from services.evaluation.service import place_key
from services.evaluation.spots import gps_cell
from shared import topics
from tests.services.evaluation.feed import TZ, Case, Evaluation, evaluation_app

KINDS = {"K0101": ("C01", "DEPT-UM"), "K0102": ("C01", "DEPT-UM"), "K0202": ("C02", "ST-110199001")}
KINDS |= {"K0501": ("C05", "DEPT-EE")}
AREAS = [
    ("110199001", "110199001001", "11019900100101"),
    ("110199001", "110199001001", None),
    ("110199002", "110199002001", "11019900200101"),
    (None, None, None),
]
POINTS = [(39.9104, 116.4008), (39.9108, 116.4003), (39.9180, 116.4000), None]
ADDRESSES = ["阳光小区5号楼", "阳光小区 5 号楼", "幸福路12号", None]
CALLERS = [f"{n:064x}" for n in range(1, 6)]
WEIGHT = {"normal": 1.0, "urgent": 1.5, "emergency": 2.0}
START = datetime(2026, 9, 1, 4, tzinfo=UTC)


@dataclass
class Truth:
    """What a report is in the end, as the test drove it."""

    case: Case
    at: datetime
    caller: str | None
    point: tuple[float, float] | None
    address: str | None

    def cells(self) -> dict[str, str]:
        located = gps_cell(*self.point, 200.0) if self.point else place_key(self.address, None, None) or ""
        c = self.case
        return {"grid": c.grid or located, "community": c.community or located, "street": c.street or ""}

    def reporter(self) -> str:
        key = place_key(self.address, *(self.point or (None, None)))
        if self.caller:
            return f"caller:{self.caller}"
        return f"{self.case.source}:{key}" if key else f"case:{self.case.case_id}"


async def drive(evaluation: Evaluation, rng: random.Random, n: int, *, callers: bool = True) -> list[Truth]:
    """Random reports: place before or after the judgement or never, kinds and urgency changed on dispatch."""
    truths: list[Truth] = []
    for i in range(n):
        kind = rng.choice(list(KINDS))
        street, community, grid = rng.choice(AREAS)
        made = Case(kind=kind, category=KINDS[kind][0], unit=KINDS[kind][1], street=street, community=community)
        made.grid, made.source = grid, rng.choice(["hotline", "grid", "town"])
        made.urgency = rng.choice(["normal", "normal", "urgent", "emergency"])
        at = START + timedelta(days=rng.uniform(0, 21), minutes=i)
        caller = rng.choice([*CALLERS, None]) if callers else None
        truth = Truth(made, at, caller, rng.choice(POINTS), rng.choice(ADDRESSES))
        lat, lon = truth.point or (None, None)
        report = made.report(at, address=truth.address, lat=lat, lon=lon)
        timing = rng.choice(["before", "after", "never"])
        if timing == "before":
            await evaluation.send(report)
        await evaluation.send(
            made.event(topics.CASE_JUDGED, at, "judged", decision="dispatch", caller_key=truth.caller)
        )
        if timing == "after":
            await evaluation.send(report)
        if timing == "never":
            truth.point = truth.address = None
        for step in range(rng.choice([0, 1, 1, 2])):
            if rng.random() < 0.5:  # triage or a return: another kind, maybe another urgency
                made.kind = rng.choice(list(KINDS))
                made.category, made.unit = KINDS[made.kind]
                made.urgency = rng.choice(["normal", "urgent"])
            await evaluation.send(made.dispatched(at + timedelta(hours=step + 1), redispatched=step > 0))
        truths.append(truth)
    return truths


def expected_counts(truths: list[Truth]) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """Counters and reporter rows recomputed from the final state of every report."""
    counts: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0.0, 0, 0, 0])
    reporters: Counter[tuple[Any, ...]] = Counter()
    for t in truths:
        day = t.at.astimezone(TZ).date()
        for level, cell in t.cells().items():
            row = counts[(level, t.case.category, cell, day, t.case.kind)]
            row[0] += 1
            row[1] += WEIGHT[t.case.urgency]
            row[2 + ["hotline", "grid", "town"].index(t.case.source)] += 1
            if level != "street" and cell:
                reporters[(level, t.case.category, cell, day, t.reporter())] += 1
    return {k: (v[0], round(v[1], 6), *v[2:]) for k, v in counts.items()}, reporters


@pytest.fixture(params=["sqlite", "postgres"])
async def evaluation(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[Evaluation]:
    url = await pg_databases() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    async with evaluation_app(url, tmp_path) as running:
        yield running


async def test_hotspot_counters_and_hot_spots_equal_a_full_recomputation(evaluation: Evaluation) -> None:
    truths = await drive(evaluation, random.Random(20261126), 160)
    want_counts, want_reporters = expected_counts(truths)
    async with evaluation.app.state.runtime.sessions() as session:
        c, r = hotspot_counts.c, hotspot_reporters.c
        rows = (await session.execute(select(hotspot_counts).where(c.reports != 0))).mappings().all()
        who = (await session.execute(select(hotspot_reporters).where(r.reports != 0))).mappings().all()
    got_counts = {
        (row["level"], row["category_code"], row["cell"], row["day"], row["kind_code"]): (
            row["reports"],
            round(row["severity_sum"], 6),
            row["from_hotline"],
            row["from_grid"],
            row["from_town"],
        )
        for row in rows
    }
    assert got_counts == want_counts
    got_reporters = {(w["level"], w["category_code"], w["cell"], w["day"], w["reporter"]): w["reports"] for w in who}
    assert got_reporters == dict(want_reporters)

    until = START + timedelta(days=16)
    page = (await evaluation.client.get("/v1/hotspots", params={"until": until.isoformat(), "limit": 200})).json()
    last = until.astimezone(TZ).date()
    first, before = last - timedelta(days=6), last - timedelta(days=13)
    places: dict[tuple[str, str], list[Truth]] = defaultdict(list)
    previous: Counter[tuple[str, str]] = Counter()
    for t in truths:
        cell, day = t.cells()["grid"], t.at.astimezone(TZ).date()
        if cell and first <= day <= last:
            places[(t.case.category, cell)].append(t)
        elif cell and before <= day < first:
            previous[(t.case.category, cell)] += 1
    want = {key: members for key, members in places.items() if len(members) >= 3}
    assert len(want) >= 3, "the random data must make several hot spots to compare"
    got = {(item["category_code"], item["place_code"]): item for item in page["items"]}
    assert set(got) == set(want)
    for key, members in want.items():
        spot, n = got[key], len(members)
        assert sorted(spot["case_ids"]) == sorted(t.case.case_id for t in members)
        growth = (n - previous[key]) / max(previous[key], 1)
        reporters = len({t.reporter() for t in members})
        severity = sum(WEIGHT[t.case.urgency] for t in members) / n
        index = n * (1 + 0.5 * min(max(growth, 0), 2)) * (0.5 + 0.5 * reporters / n) * severity
        assert (spot["heat"]["reporters"], spot["heat"]["previous_reports"]) == (reporters, previous[key])
        assert spot["heat"]["index"] == round(index, 2)
        assert spot["kind_codes"] == dict(Counter(t.case.kind for t in members))
    indexes = [item["heat"]["index"] for item in page["items"]]
    assert indexes == sorted(indexes, reverse=True)
    # A short page reads the reporters of fewer places, and is still the head of the full ranking.
    top = (await evaluation.client.get("/v1/hotspots", params={"until": until.isoformat(), "limit": 2})).json()
    assert top["items"] == page["items"][:2]
