"""The rates (三率 and the rest) from the roll-ups: a query sums rows, it never reads the cases."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import rollups
from services.evaluation.periods import label, segments
from services.evaluation.rollup import ALL_COLUMNS, ALL_KINDS, BUCKET_COLUMNS, quantile
from services.evaluation.schemas_metrics import Rate, RateDefinition
from shared.problems import Problem


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A rate: which counters make its numerator and denominator."""

    name: str
    numerator: tuple[str, ...]
    denominator: str
    numerator_text: str
    denominator_text: str
    better: Literal["higher", "lower"] = "higher"

    def definition(self) -> RateDefinition:
        return RateDefinition(
            name=self.name, numerator=self.numerator_text, denominator=self.denominator_text, better=self.better
        )


RATES: dict[str, RateSpec] = {
    "response_rate": RateSpec(
        "响应率 response rate", ("signed",), "dispatched", "assignments signed for (签收)", "assignments dispatched"
    ),
    "resolution_rate": RateSpec(
        "解决率 resolution rate",
        ("resolved",),
        "callbacks_counted",
        "call-back answers: resolved",
        "call-back answers that count (not those that were not the unit's fault; unreachable ones are not answers)",
    ),
    "satisfaction_rate": RateSpec(
        "满意率 satisfaction rate",
        ("satisfied", "basically_satisfied"),
        "callbacks_counted",
        "call-back answers: satisfied or basically satisfied",
        "call-back answers that count",
    ),
    "on_time_sign_rate": RateSpec(
        "按时签收率 on-time sign rate", ("signed_on_time",), "signed", "signed before the deadline", "signed"
    ),
    "on_time_completion_rate": RateSpec(
        "按时办结率 on-time completion rate",
        ("completed_on_time",),
        "completed",
        "completed before the deadline (first completion)",
        "completed (first completion of each assignment)",
    ),
    "return_rate": RateSpec(
        "退单率 return rate",
        ("returned",),
        "dispatched",
        "assignments returned (退单)",
        "assignments dispatched",
        "lower",
    ),
    "reopen_rate": RateSpec(
        "重办率 reopen rate",
        ("reopened",),
        "callbacks_counted",
        "call-back answers that reopened the case (重办)",
        "call-back answers that count",
        "lower",
    ),
    "extension_rate": RateSpec(
        "延期率 extension rate",
        ("extended",),
        "dispatched",
        "extensions granted (延期)",
        "assignments dispatched",
        "lower",
    ),
    "overdue_rate": RateSpec(
        "超期率 overdue rate",
        ("overdue",),
        "dispatched",
        "assignments whose completion deadline passed before completion",
        "assignments dispatched",
        "lower",
    ),
}
DEFINITIONS = {name: spec.definition() for name, spec in RATES.items()}
DEFINITION_FIELDS = {name: definition.model_dump() for name, definition in DEFINITIONS.items()}
NOTES = [
    "Counts are per assignment: a case re-dispatched after a return or a dispute counts once for each unit it was "
    "sent to; everything an assignment does is counted in the period of the day it was dispatched (Asia/Shanghai).",
    "Every call-back answer counts in the resolution and satisfaction rates, one per round; answers that were not "
    "the unit's fault and respondents who could not be reached are listed but not counted.",
    "Handling time runs from dispatch to the first completion of the assignment; median and p90 come from a "
    "histogram kept on each roll-up row: the bucket is exact, the hours inside it interpolated.",
    "Department rows are the responsible (承办) unit, which is a street office for territorial matters; street, "
    "community and grid rows are the case's territory; the city has rows of its own. Community, grid and city "
    "rows are not split by kind (the city filtered by kind or category sums the department rows).",
    "Towns' ratings (bottom_up_rating) count by the day they were given, on the department rows only.",
]
# UnitMetrics count fields and the counters they show
ROW_COUNTS = {
    "dispatched": "dispatched",
    "signed": "signed",
    "completed": "completed",
    "feedback": "callbacks",
    "callbacks_counted": "callbacks_counted",
    "not_unit_fault": "not_unit_fault",
    "unreachable": "unreachable",
    "reopened": "reopened",
    "returned": "returned",
    "returned_without_cause": "returned_without_cause",
    "extended": "extended",
    "overdue": "overdue",
    "closed": "closed",
}
LEVELS = ("department", "street", "community", "grid", "category", "kind", "city")
_CODE_COLUMN = {"category": "category_code", "kind": "kind_code"}
_UNSPLIT = frozenset({"community", "grid"})


def rate_fields(numerator: float, denominator: float) -> dict[str, Any]:
    """A rate's value and counts as plain fields."""
    return {
        "value": round(numerator / denominator, 4) if denominator else None,
        "numerator": int(numerator),
        "denominator": int(denominator),
    }


def rate(numerator: float, denominator: float) -> Rate:
    """A rate with its counts."""
    return Rate(**rate_fields(numerator, denominator))


_RATE_PARTS = [(name, spec.numerator, spec.denominator) for name, spec in RATES.items()]


def _all_rates(counters: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, tops, bottom in _RATE_PARTS:
        top = counters[tops[0]] if len(tops) == 1 else sum(counters[t] for t in tops)
        found[name] = rate_fields(top, counters[bottom])
    return found


def rate_of(name: str, counters: Mapping[str, float]) -> Rate:
    """One named rate from summed counters."""
    spec = RATES[name]
    return rate(sum(counters.get(n, 0) for n in spec.numerator), counters.get(spec.denominator, 0))


def _check(level: str, *, kind: str | None, category: str | None, by: str | None) -> None:
    if level in _UNSPLIT and (kind or category or by):
        raise Problem(f"{level} rows are not split by kind; filter or split by kind at department or street level")
    if by and level not in ("department", "street"):
        raise Problem(f"by splits department or street rows; level {level} is already one row per its code", field="by")


GroupKey = tuple[str, str | None, str | None, str]


async def sums(
    session: AsyncSession,
    *,
    level: str,
    unit: str | None = None,
    kind: str | None = None,
    category: str | None = None,
    by: str | None = None,
    grouping: str,
    date_from: date | None,
    date_to: date | None,
) -> dict[GroupKey, dict[str, float]]:
    """Summed counters per (code, kind, category, period) from the roll-up rows that cover the range."""
    _check(level, kind=kind, category=category, by=by)
    # the city has rows of its own; split or filtered by kind it is the sum of the department rows
    city_rows = level == "city" and not (kind or category)
    source = "department" if level in ("category", "kind") or (level == "city" and not city_rows) else level
    c = rollups.c
    code_name = _CODE_COLUMN.get(level, "code")
    names = [] if level == "city" else [code_name]
    if level == "kind" or by == "kind":
        names += ["kind_code", "category_code"]
    elif level == "category" or by == "category":
        names += ["category_code"]
    group = [c[name] for name in dict.fromkeys(names)]
    totals: dict[GroupKey, list[float]] = {}
    for segment in segments(date_from, date_to, grouping):
        query = select(*group, c.period_start, *(func.sum(c[name]) for name in ALL_COLUMNS)).where(
            c.span == segment.span, c.level == source
        )
        if segment.first is not None:
            query = query.where(c.period_start >= segment.first)
        if segment.last is not None:
            query = query.where(c.period_start <= segment.last)
        if unit and level != "city":
            query = query.where(c[code_name] == unit)
        if kind:
            query = query.where(c.kind_code == kind)
        if category:
            query = query.where(c.category_code == category)
        if level in ("category", "kind") or by:
            query = query.where(c.kind_code != ALL_KINDS)
        for row in (await session.execute(query.group_by(*group, c.period_start))).all():
            named = dict(zip((col.name for col in group), row[: len(group)], strict=True))
            key: GroupKey = (
                "city" if level == "city" else str(named[code_name]),
                named.get("kind_code"),
                named.get("category_code"),
                label(row[len(group)], grouping),
            )
            counts: tuple[float | None, ...] = tuple(row[len(group) + 1 :])
            known = totals.get(key)
            if known is None:
                totals[key] = [float(v or 0) for v in counts]
            else:
                for i, value in enumerate(counts):
                    known[i] += value or 0
    return {key: dict(zip(ALL_COLUMNS, values, strict=True)) for key, values in totals.items()}


def unit_row(level: str, key: GroupKey, counters: Mapping[str, float]) -> dict[str, Any]:
    """The rates and their counts for one group, as the fields of ``UnitMetrics``.

    Rows stay plain dicts until the page is validated once: a grid-level page has thousands of them.
    """
    code, kind_code, category_code, period = key
    handled = int(counters["handling_count"])
    buckets = [int(counters[name]) for name in BUCKET_COLUMNS]

    def q(value: float) -> dict[str, Any] | None:
        found = quantile(buckets, value)
        if found is None:
            return None
        return {"hours": found.hours, "bucket_from_hours": found.lower, "bucket_to_hours": found.upper}

    ratings = int(counters["bottom_up_ratings"])
    scored = int(counters["scored"])
    return {
        "level": level,
        "unit_code": code,
        "kind_code": kind_code,
        "category_code": category_code,
        "period": period,
        **{name: int(counters[source]) for name, source in ROW_COUNTS.items()},
        **_all_rates(counters),
        "handling_time": {
            "cases": handled,
            "mean_hours": round(counters["handling_hours_sum"] / handled, 2) if handled else None,
            "median": q(0.5),
            "p90": q(0.9),
        },
        "case_score": {"mean": round(counters["score_sum"] / scored, 2) if scored else None, "cases": scored},
        "bottom_up_rating": {
            "mean": round(counters["bottom_up_score_sum"] / ratings, 2) if ratings else None,
            "ratings": ratings,
        },
    }


async def metrics(
    session: AsyncSession,
    *,
    level: str,
    unit: str | None,
    kind: str | None,
    category: str | None,
    by: str | None,
    grouping: str,
    date_from: date | None,
    date_to: date | None,
) -> list[dict[str, Any]]:
    """The rates per unit (or category, kind, the city) and period, as ``UnitMetrics`` fields."""
    found = await sums(
        session,
        level=level,
        unit=unit,
        kind=kind,
        category=category,
        by=by,
        grouping=grouping,
        date_from=date_from,
        date_to=date_to,
    )
    order = sorted(found, key=lambda k: (k[3], k[0], k[1] or "", k[2] or ""))
    return [unit_row(level, key, found[key]) for key in order]


CSV_COUNTS = tuple(ROW_COUNTS)


def to_csv(items: list[dict[str, Any]]) -> str:
    """The rows as CSV: counts, then each rate's value, numerator and denominator, then times and scores."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    rate_columns = [f"{name}{part}" for name in RATES for part in ("", "_numerator", "_denominator")]
    writer.writerow(
        [
            "level",
            "unit_code",
            "kind_code",
            "category_code",
            "period",
            *CSV_COUNTS,
            *rate_columns,
            "handling_cases",
            "handling_median_hours",
            "handling_p90_hours",
            "case_score_mean",
            "case_score_cases",
            "bottom_up_mean",
            "bottom_up_ratings",
        ]
    )

    def blank(value: Any) -> Any:
        return "" if value is None else value

    for item in items:
        handling = item["handling_time"]
        writer.writerow(
            [
                item["level"],
                item["unit_code"],
                blank(item["kind_code"]),
                blank(item["category_code"]),
                item["period"],
                *(item[name] for name in CSV_COUNTS),
                *(blank(item[name][part]) for name in RATES for part in ("value", "numerator", "denominator")),
                handling["cases"],
                blank(handling["median"] and handling["median"]["hours"]),
                blank(handling["p90"] and handling["p90"]["hours"]),
                blank(item["case_score"]["mean"]),
                item["case_score"]["cases"],
                blank(item["bottom_up_rating"]["mean"]),
                item["bottom_up_rating"]["ratings"],
            ]
        )
    return out.getvalue()
