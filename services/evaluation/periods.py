"""Periods: labels (day, ISO week, month, quarter), parsing them back, and the roll-up rows a range needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from shared.problems import Problem

Grouping = Literal["day", "week", "month", "quarter", "all"]
GROUPINGS: tuple[Grouping, ...] = ("day", "week", "month", "quarter", "all")


def label(day: date, grouping: str) -> str:
    """The period a day falls in: 2026-11-26, 2026-W48, 2026-11, 2026-Q4 or all."""
    if grouping == "day":
        return day.isoformat()
    if grouping == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grouping == "month":
        return day.strftime("%Y-%m")
    if grouping == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return "all"


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Period:
    """A named period and its first and last day."""

    name: str
    start: date
    end: date


_PATTERNS = (
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "day"),
    (re.compile(r"^(\d{4})-W(\d{2})$"), "week"),
    (re.compile(r"^(\d{4})-(\d{2})$"), "month"),
    (re.compile(r"^(\d{4})-Q([1-4])$"), "quarter"),
    (re.compile(r"^(\d{4})$"), "year"),
)
PERIOD_HELP = "a day (2026-11-26), ISO week (2026-W48), month (2026-11), quarter (2026-Q4) or year (2026)"


def parse_period(text: str, *, field: str = "period") -> Period:
    """Read a period name; 400 naming the field when it is not one."""
    for pattern, kind in _PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        numbers = [int(part) for part in match.groups()]
        try:
            if kind == "day":
                start = end = date(*numbers)
            elif kind == "week":
                start = date.fromisocalendar(numbers[0], numbers[1], 1)
                end = start + timedelta(days=6)
            elif kind == "month":
                start = date(numbers[0], numbers[1], 1)
                end = _month_end(start)
            elif kind == "quarter":
                start = date(numbers[0], 3 * numbers[1] - 2, 1)
                end = _month_end(date(numbers[0], 3 * numbers[1], 1))
            else:
                start, end = date(numbers[0], 1, 1), date(numbers[0], 12, 31)
        except ValueError:
            break
        return Period(name=text, start=start, end=end)
    raise Problem(f"{text!r} is not a period: give {PERIOD_HELP}", field=field)


@dataclass(frozen=True, slots=True)
class Segment:
    """Roll-up rows of one span whose period_start lies in [first, last] (open where None)."""

    span: Literal["day", "month"]
    first: date | None
    last: date | None


def segments(date_from: date | None, date_to: date | None, grouping: str) -> list[Segment]:
    """The rows that cover [from, to]: whole months from month rows, the ragged edges and day/week from day rows."""
    if grouping in ("day", "week"):
        return [Segment("day", date_from, date_to)]
    head: Segment | None = None
    tail: Segment | None = None
    first_month = date_from
    if date_from is not None and date_from.day != 1:
        first_month = _month_end(date_from) + timedelta(days=1)
        head = Segment("day", date_from, min(first_month - timedelta(days=1), date_to or date.max))
    last_month: date | None = date_to.replace(day=1) if date_to is not None else None
    if date_to is not None and date_to != _month_end(date_to):
        assert last_month is not None
        tail_start = max(last_month, date_from) if date_from is not None else last_month
        if head is None or tail_start > (head.last or date.max):
            tail = Segment("day", tail_start, date_to)
        last_month = (last_month - timedelta(days=1)).replace(day=1)
    parts = [part for part in (head, tail) if part is not None]
    if first_month is None or last_month is None or first_month <= last_month:
        parts.append(Segment("month", first_month, last_month))
    return parts
