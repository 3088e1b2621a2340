"""The roll-up vocabulary: counters, the handling-time histogram, and which rows a case's counters land on."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

INT_COUNTERS = (
    "dispatched",  # assignments: each dispatch of a case to a unit, re-dispatches included
    "signed",  # 签收: first sign of the assignment
    "signed_on_time",
    "completed",  # 办结: first completion of the assignment
    "completed_on_time",
    "callbacks",  # 回访 answers of any kind
    "callbacks_counted",  # answers that count in the rates (not the ones that were not the unit's fault)
    "resolved",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "not_unit_fault",  # unresolved or dissatisfied, but not the unit's fault: closed, not counted
    "unreachable",  # closed after the allowed call-back attempts failed
    "reopened",  # 重办 rounds
    "returned",  # 退单
    "returned_without_cause",  # returns the centre sent back to the same unit
    "extension_requested",  # 延期 asked
    "extended",  # 延期 granted
    "overdue",  # the completion deadline passed before completion
    "closed",
    "scored",  # closed cases with a final per-case score
    "bottom_up_ratings",  # towns' 1-5 ratings of a department they called (by rating day)
    "bottom_up_score_sum",
    "handling_count",  # first completions with a measured handling time
)
FLOAT_COUNTERS = ("score_sum", "handling_hours_sum")
COUNTERS = (*INT_COUNTERS, *FLOAT_COUNTERS)

# Upper edges (hours) of the handling-time histogram; the last bucket is open. Edges follow common time limits
# (1 h, 2 h, 4 h, 1 day, 3, 5, 7, 15 and 30 days) with steps of at most 2x, mostly 1.5x or less.
BUCKET_EDGES_HOURS: tuple[float, ...] = (
    0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48, 72, 96, 120, 168, 216, 264, 336, 432, 528, 720, 1080,
)  # fmt: skip
BUCKET_COLUMNS = tuple(f"h{i:02d}" for i in range(len(BUCKET_EDGES_HOURS) + 1))
ALL_COLUMNS = (*COUNTERS, *BUCKET_COLUMNS)

ALL_KINDS = "*"
SPANS = ("day", "month")
UNIT_LEVELS = ("department", "street", "community", "grid", "city")
CITY = "city"  # the code of the one city row per period
KIND_LEVELS = frozenset({"department", "street"})  # levels whose rows are split by kind


def bucket_of(hours: float) -> str:
    """The histogram column a handling time falls in."""
    return BUCKET_COLUMNS[bisect.bisect_right(BUCKET_EDGES_HOURS, max(hours, 0.0))]


def bucket_bounds(index: int) -> tuple[float, float | None]:
    """Lower and upper edge (hours) of a bucket; the last has no upper edge."""
    lower = 0.0 if index == 0 else BUCKET_EDGES_HOURS[index - 1]
    upper = BUCKET_EDGES_HOURS[index] if index < len(BUCKET_EDGES_HOURS) else None
    return lower, upper


@dataclass(frozen=True, slots=True)
class QuantileEstimate:
    """A quantile read from the histogram: the bucket that holds it exactly, and an interpolated value."""

    hours: float
    lower: float
    upper: float | None


def quantile(counts: Sequence[int], q: float) -> QuantileEstimate | None:
    """The nearest-rank q-quantile from bucket counts: its bucket is exact, the value inside it interpolated."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower, upper = bucket_bounds(index)
            if upper is None:
                return QuantileEstimate(hours=lower, lower=lower, upper=None)
            inside = (rank - seen - 0.5) / count
            return QuantileEstimate(hours=round(lower + (upper - lower) * inside, 2), lower=lower, upper=upper)
        seen += count
    raise AssertionError("unreachable: the ranks add up to the total")


class RowKey(NamedTuple):
    """One roll-up row (a tuple: hashed and ordered as fast as Python can)."""

    span: str
    level: str
    period_start: date
    code: str
    kind_code: str
    category_code: str


def month_of(day: date) -> date:
    """The first day of the day's month."""
    return day.replace(day=1)


def keys_for(
    *,
    unit: str | None,
    kind: str | None,
    category: str | None,
    day: date,
    territory: Mapping[str, str | None],
) -> list[RowKey]:
    """The rows one assignment's counters land on: its unit, its territory and the city, by day and by month."""
    codes = {"department": unit, **{level: territory.get(level) for level in ("street", "community", "grid")}}
    codes[CITY] = CITY
    keys: list[RowKey] = []
    for level, code in codes.items():
        if not code:
            continue
        split = level in KIND_LEVELS
        kind_code = (kind or "") if split else ALL_KINDS
        category_code = (category or "") if split else ALL_KINDS
        for span, start in (("day", day), ("month", month_of(day))):
            keys.append(RowKey(span, level, start, code, kind_code, category_code))
    return keys


def unit_keys(unit: str, day: date) -> list[RowKey]:
    """Rows for counters of a unit that belong to no kind (towns' ratings of a department), and the city's."""
    return [
        RowKey(span, level, start, code, ALL_KINDS, ALL_KINDS)
        for span, start in (("day", day), ("month", month_of(day)))
        for level, code in (("department", unit), (CITY, CITY))
    ]
