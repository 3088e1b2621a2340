"""Deadlines in working days across the 2025 National Day holiday and its make-up working days."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.dispatch.workdays import add_hours, add_working_days, add_working_hours, is_working_day

TZ = ZoneInfo("Asia/Shanghai")


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=TZ)


def test_a_make_up_sunday_counts_as_a_working_day() -> None:
    # Friday 26 Sep 2025; Sunday 28 Sep was a make-up working day for the National Day holiday.
    deadline = add_working_days(at("2025-09-26"), 3, tz=TZ)
    assert deadline.due == datetime(2025, 9, 30, 23, 59, 59, tzinfo=TZ)
    assert "skipping 1 non-working days" in deadline.basis


def test_the_national_day_week_is_skipped() -> None:
    # 1-8 Oct 2025 were holidays: two working days from 30 Sep end on Friday 10 Oct.
    deadline = add_working_days(at("2025-09-30"), 2, tz=TZ)
    assert deadline.due.date() == date(2025, 10, 10)
    assert "skipping 8 non-working days" in deadline.basis
    assert "(calendar)" in deadline.basis


def test_the_make_up_saturday_after_the_holiday_is_a_working_day() -> None:
    assert add_working_days(at("2025-10-10"), 1, tz=TZ).due.date() == date(2025, 10, 11)


def test_a_utc_start_is_counted_on_its_beijing_date() -> None:
    late_utc = datetime.fromisoformat("2025-09-25T17:00:00+00:00")  # already Friday 26 Sep in Beijing
    assert add_working_days(late_utc, 3, tz=TZ).due.date() == date(2025, 9, 30)


def test_years_beyond_the_calendar_fall_back_to_weekends_and_say_so() -> None:
    working, source = is_working_day(date(2099, 1, 5))
    assert (working, source) == (True, "weekends-only")
    assert "weekends-only" in add_working_days(at("2099-01-02"), 1, tz=TZ).basis


def test_sign_deadlines_are_clock_hours() -> None:
    deadline = add_hours(at("2025-10-01", 9), 2, tz=TZ)
    assert deadline.due == at("2025-10-01", 11)


def test_working_hours_skip_the_night_and_the_holiday_week() -> None:
    # 30 Sep 2025 15:00: two office hours left that day, then 1-8 Oct are holidays; four more hours on 9 Oct.
    deadline = add_working_hours(at("2025-09-30", 15), 6, tz=TZ)
    assert deadline.due == at("2025-10-09", 13)
    assert "skipping 8 non-working days" in deadline.basis


def test_working_hours_started_before_opening_count_from_nine() -> None:
    assert add_working_hours(at("2025-09-28", 7), 3, tz=TZ).due == at("2025-09-28", 12)  # a make-up Sunday


def test_working_hours_started_after_closing_begin_the_next_working_day() -> None:
    assert add_working_hours(at("2025-10-10", 18), 1, tz=TZ).due == at("2025-10-11", 10)  # make-up Saturday
