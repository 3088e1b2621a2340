"""Deadlines in working time, with China's statutory holidays and make-up working days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar


@dataclass(frozen=True, slots=True)
class Deadline:
    """A due time and how it was computed, so anyone can check it."""

    due: datetime
    basis: str


def is_working_day(day: date) -> tuple[bool, str]:
    """Whether a day is a working day, and on what authority (the holiday calendar or weekends only)."""
    try:
        return bool(chinese_calendar.is_workday(day)), "calendar"
    except NotImplementedError:
        # Beyond the calendar's published years: fall back to weekends only, and say so.
        return day.weekday() < 5, "weekends-only"


def add_working_days(start: datetime, days: int, *, tz: ZoneInfo) -> Deadline:
    """Due at the end of the ``days``-th working day after the start day (the start day is not counted)."""
    local = start.astimezone(tz)
    day = local.date()
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
        f"{days} working days after {local.date().isoformat()}, skipping {skipped} non-working days "
        f"({'+'.join(sorted(sources))}); due at the end of {day.isoformat()} {tz.key}"
    )
    return Deadline(due=due, basis=basis)


def add_hours(start: datetime, hours: float, *, tz: ZoneInfo) -> Deadline:
    """Due a number of clock hours after the start."""
    due = (start + timedelta(hours=hours)).astimezone(tz)
    return Deadline(due=due, basis=f"{hours:g} hours after {start.astimezone(tz).isoformat()}")
