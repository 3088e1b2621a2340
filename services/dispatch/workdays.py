"""Deadlines in working time, with China's statutory holidays and make-up working days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar


@dataclass(frozen=True, slots=True)
class Deadline:
    """A due time and how it was computed, so anyone can check it."""

    due: datetime
    basis: str


@lru_cache(maxsize=4096)  # a deadline looks at the same few weeks for every report: ask the calendar once a day
def is_working_day(day: date) -> tuple[bool, str]:
    """Whether a day is a working day, and on what authority (the holiday calendar or weekends only)."""
    try:
        return bool(chinese_calendar.is_workday(day)), "calendar"
    except NotImplementedError:
        # Beyond the calendar's published years: fall back to weekends only, and say so.
        return day.weekday() < 5, "weekends-only"


def add_working_days(start: datetime, days: int, *, tz: ZoneInfo) -> Deadline:
    """Due at the end of the ``days``-th working day after the start day (the start day is not counted)."""
    return _working_days_after(start.astimezone(tz).date(), days, tz)


@lru_cache(maxsize=1024)  # the deadline depends on the start day only: the same for a day's reports
def _working_days_after(start: date, days: int, tz: ZoneInfo) -> Deadline:
    day = start
    counted = 0
    skipped = 0
    sources: set[str] = set()
    while counted < days:
        day += timedelta(days=1)
        working, source = is_working_day(day)
        sources.add(source)
        if working:
            counted += 1
        else:
            skipped += 1
    due = datetime.combine(day, time(23, 59, 59), tzinfo=tz)
    basis = (
        f"{days} working days after {start.isoformat()}, skipping {skipped} non-working days "
        f"({'+'.join(sorted(sources))}); due at the end of {day.isoformat()} {tz.key}"
    )
    return Deadline(due=due, basis=basis)


def add_hours(start: datetime, hours: float, *, tz: ZoneInfo) -> Deadline:
    """Due a number of clock hours after the start."""
    due = (start + timedelta(hours=hours)).astimezone(tz)
    return Deadline(due=due, basis=f"{hours:g} hours after {start.astimezone(tz).isoformat()}")


WORKDAY_START = time(9, 0)
WORKDAY_END = time(17, 0)


def add_working_hours(start: datetime, hours: float, *, tz: ZoneInfo) -> Deadline:
    """Due after ``hours`` of office time (09:00-17:00 on working days), skipping nights, weekends and holidays."""
    local = start.astimezone(tz)
    remaining = timedelta(hours=hours)
    cursor = local
    skipped_days = 0
    sources: set[str] = set()
    while True:
        working, source = is_working_day(cursor.date())
        sources.add(source)
        opens = datetime.combine(cursor.date(), WORKDAY_START, tzinfo=tz)
        closes = datetime.combine(cursor.date(), WORKDAY_END, tzinfo=tz)
        if working and cursor < closes:
            begin = max(cursor, opens)
            available = closes - begin
            if remaining <= available:
                due = begin + remaining
                break
            remaining -= available
        elif not working:
            skipped_days += 1
        cursor = datetime.combine(cursor.date() + timedelta(days=1), WORKDAY_START, tzinfo=tz)
    basis = (
        f"{hours:g} working hours ({WORKDAY_START:%H:%M}-{WORKDAY_END:%H:%M}) after {local.isoformat()}, "
        f"skipping {skipped_days} non-working days ({'+'.join(sorted(sources))})"
    )
    return Deadline(due=due, basis=basis)
