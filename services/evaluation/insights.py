"""What the stream teaches (用): the monthly issue list (每月一题) and suggested changes to the guide."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import hotspots as spots
from services.evaluation.metrics import rate, rate_of, sums
from services.evaluation.models import CaseReroute, EvaluatedCase, hotspot_counts
from services.evaluation.periods import Period, parse_period
from services.evaluation.repeats import repeat_groups
from services.evaluation.schemas_use import GuideSuggestion, MonthlyIssue, PlaceCount
from services.evaluation.settings import EvaluationSettings
from services.evaluation.spots import NO_CELL

MONTHLY_FORMULA = (
    "priority = cases × (1 + clamp(growth, 0, 2)) × (1 + dissatisfaction) × (1 + repeat_share); cases are the "
    "month's judged reports of the kind (duplicates included: each is a voice); growth = (cases − previous month) ÷ "
    "max(previous month, 1); dissatisfaction = 1 − satisfaction rate of the kind's call-backs in the month (0 when "
    "none); repeat_share = share of the cases that belong to a repeat complaint (same kind, same spot)"
)
GUIDE_RULE = (
    "a kind dispatched at least {min_cases} times in the period is reviewed when its re-route rate (cases that "
    "left the kind or unit after a return, a dispute or a person's triage ÷ dispatches) reaches {reroute:.0%} or "
    "its return rate reaches {returned:.0%}. refine_kind: most re-routes go to one other kind; change_primary_unit: "
    "most go to one other unit; clarify_duty: returns the centre mostly sent back to the same unit; "
    "settle_responsibility: two or more responsibility disputes (三级会商)"
)


def local_range(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the service's time zone, as UTC."""
    return (
        datetime.combine(start, time(), tz).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC),
    )


def previous_month(month: Period) -> Period:
    """The month before."""
    return parse_period((month.start - timedelta(days=1)).strftime("%Y-%m"))


async def _month_counts(
    session: AsyncSession, first: date, last: date
) -> tuple[dict[str, Counter[str]], dict[str, str]]:
    """Reports per kind and street (``NO_CELL``: no street) from the hot-spot counters' street rows; categories."""
    c = hotspot_counts.c
    rows = await session.execute(
        select(c.kind_code, c.category_code, c.cell, func.sum(c.reports))
        .where(c.level == "street", c.day >= first, c.day <= last)
        .group_by(c.kind_code, c.category_code, c.cell)
    )
    found: dict[str, Counter[str]] = defaultdict(Counter)
    categories: dict[str, str] = {}
    for kind, category, street, n in rows.all():
        if n:
            found[kind][street] += int(n)
            categories[kind] = category
    return found, categories


async def _examples(session: AsyncSession, kind: str, since: datetime, until: datetime) -> list[str]:
    rows = await session.execute(
        select(EvaluatedCase.case_number)
        .where(EvaluatedCase.kind_code == kind, EvaluatedCase.judged_at >= since, EvaluatedCase.judged_at < until)
        .order_by(EvaluatedCase.judged_at.desc(), EvaluatedCase.case_id.desc())
        .limit(5)
    )
    return list(reversed(rows.scalars().all()))


async def monthly_issues(
    session: AsyncSession, settings: EvaluationSettings, *, month: Period, limit: int
) -> list[MonthlyIssue]:
    """The kinds of problem that most deserve proactive work this month (每月一题), with the evidence."""
    since, until = local_range(month.start, month.end, ZoneInfo(settings.timezone))
    before = previous_month(month)
    counts, categories = await _month_counts(session, month.start, month.end)
    previous = {
        kind: sum(streets.values())
        for kind, streets in (await _month_counts(session, before.start, before.end))[0].items()
    }
    repeats: Counter[str] = Counter()
    for kind, _key, n in await repeat_groups(session, since=since, until=until, min_cases=2):
        repeats[kind] += n
    places = await spots.tallies(
        session,
        level=settings.hotspot_place_level,
        before=month.start,
        first=month.start,
        last=month.end,
        min_reports=settings.hotspot_min_reports,
    )
    clusters = spots.hotspots_per_kind(list(places.values()))
    rates = await sums(session, level="kind", grouping="all", date_from=month.start, date_to=month.end)
    counters_of = {key[0]: counters for key, counters in rates.items()}
    issues: list[MonthlyIssue] = []
    for kind, by_street in counts.items():
        cases = sum(by_street.values())
        if cases < settings.monthly_issue_min_cases:
            continue
        earlier = previous.get(kind, 0)
        growth = (cases - earlier) / max(earlier, 1)
        counters = counters_of.get(kind, {})
        satisfaction = rate_of("satisfaction_rate", counters) if counters else rate(0, 0)
        dissatisfaction = 1 - satisfaction.value if satisfaction.value is not None else 0.0
        repeat_share = min(1.0, repeats[kind] / cases)
        streets = Counter({s: n for s, n in by_street.items() if s != NO_CELL})
        issues.append(
            MonthlyIssue(
                rank=0,
                kind_code=kind,
                category_code=categories.get(kind),
                priority=round(cases * (1 + min(max(growth, 0), 2)) * (1 + dissatisfaction) * (1 + repeat_share), 2),
                cases=cases,
                previous_cases=earlier,
                growth=round(growth, 3),
                streets=len(streets),
                top_streets=[PlaceCount(street_code=s, cases=n) for s, n in streets.most_common(5)],
                satisfaction_rate=satisfaction,
                resolution_rate=rate_of("resolution_rate", counters) if counters else rate(0, 0),
                reopen_rate=rate_of("reopen_rate", counters) if counters else rate(0, 0),
                repeat_cases=repeats[kind],
                repeat_share=round(repeat_share, 3),
                hotspots=clusters[kind],
                examples=[],
            )
        )
    issues.sort(key=lambda i: (-i.priority, -i.cases, i.kind_code))
    for position, issue in enumerate(issues[:limit], start=1):
        issue.rank = position
        issue.examples = await _examples(session, issue.kind_code, since, until)
    return issues[:limit]


async def guide_suggestions(
    session: AsyncSession, settings: EvaluationSettings, *, date_from: date, date_to: date
) -> list[GuideSuggestion]:
    """Kinds that are often returned or re-routed, and what the guide should change, with the evidence."""
    since, until = local_range(date_from, date_to, ZoneInfo(settings.timezone))
    by_unit = await sums(session, level="department", by="kind", grouping="all", date_from=date_from, date_to=date_to)
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    category: dict[str, str | None] = {}
    for (_unit, kind, cat, _period), counters in by_unit.items():
        for name in ("dispatched", "returned", "returned_without_cause"):
            totals[kind or ""][name] += int(counters[name])
        category[kind or ""] = cat
    moves = (
        await session.execute(
            select(CaseReroute).where(CaseReroute.at >= since, CaseReroute.at < until).order_by(CaseReroute.at)
        )
    ).scalars()
    rerouted: dict[str, list[CaseReroute]] = defaultdict(list)
    for move in moves:
        rerouted[move.from_kind or ""].append(move)
    found: list[GuideSuggestion] = []
    for kind, counts in sorted(totals.items()):
        dispatched = counts["dispatched"]
        if dispatched < settings.guide_min_cases:
            continue
        moved = rerouted.get(kind, [])
        to_kinds = Counter(m.to_kind or "" for m in moved if m.to_kind != m.from_kind)
        to_units = Counter(m.to_unit or "" for m in moved if m.from_unit is not None and m.to_unit != m.from_unit)
        disputes = sum(1 for m in moved if m.reason == "dispute")
        evidence = GuideSuggestion(
            kind_code=kind,
            category_code=category.get(kind),
            suggestion="",
            text="",
            dispatched=dispatched,
            return_rate=rate(counts["returned"], dispatched),
            reroute_rate=rate(len(moved), dispatched),
            returned_without_cause=counts["returned_without_cause"],
            disputes=disputes,
            to_kinds=dict(to_kinds.most_common()),
            to_units=dict(to_units.most_common()),
            return_reasons=list(dict.fromkeys(m.return_reason for m in moved if m.return_reason))[:5],
            examples=[m.case_number for m in moved[:5]],
        )
        for suggestion, text in _suggest(kind, counts, moved, to_kinds, to_units, disputes, settings):
            found.append(evidence.model_copy(update={"suggestion": suggestion, "text": text}))
    return found


def _suggest(
    kind: str,
    counts: Counter[str],
    moved: list[CaseReroute],
    to_kinds: Counter[str],
    to_units: Counter[str],
    disputes: int,
    settings: EvaluationSettings,
) -> list[tuple[str, str]]:
    dispatched, returned = counts["dispatched"], counts["returned"]
    found: list[tuple[str, str]] = []
    if moved and len(moved) / dispatched >= settings.guide_reroute_rate:
        top_kind, by_kind = (to_kinds.most_common(1) or [("", 0)])[0]
        top_unit, by_unit = (to_units.most_common(1) or [("", 0)])[0]
        if by_kind >= by_unit and by_kind * 2 >= len(moved):
            found.append(
                (
                    "refine_kind",
                    f"{kind} is often re-judged as {top_kind} ({by_kind} of {len(moved)} re-routes in "
                    f"{dispatched} dispatches): add keywords and examples that tell {kind} from {top_kind}, "
                    "or merge the two",
                )
            )
        elif by_unit * 2 >= len(moved):
            found.append(
                (
                    "change_primary_unit",
                    f"cases of {kind} end up with {top_unit} ({by_unit} of {len(moved)} re-routes in {dispatched} "
                    f"dispatches): make {top_unit} the primary unit of {kind}, or list it as cooperating",
                )
            )
        else:
            found.append(
                (
                    "refine_kind",
                    f"{kind} is re-routed in {len(moved)} of {dispatched} dispatches to several kinds and units: "
                    "its description and keywords do not pick out one matter",
                )
            )
    sent_back = counts["returned_without_cause"]
    if returned and returned / dispatched >= settings.guide_return_rate and sent_back * 2 >= returned:
        found.append(
            (
                "clarify_duty",
                f"{kind} is returned in {returned} of {dispatched} dispatches and the centre sent {sent_back} of them "
                "back to the same unit: write that unit's duty for this matter into the responsibility list",
            )
        )
    if disputes >= 2:
        found.append(
            (
                "settle_responsibility",
                f"{kind} led to {disputes} responsibility disputes (三级会商): record the settled primary and "
                "cooperating units in the list",
            )
        )
    return found
