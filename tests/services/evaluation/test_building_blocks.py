"""Periods, the handling-time histogram, the per-case score and the Wilson interval, on their own."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from services.evaluation.periods import label, parse_period, segments
from services.evaluation.rankings import wilson, z_for
from services.evaluation.rollup import BUCKET_COLUMNS, bucket_of, quantile
from services.evaluation.scoring import Answer, score_case
from services.evaluation.settings import EvaluationSettings, ScoreRules
from shared.problems import Problem


def covered(parts: Sequence[tuple[str, date | None, date | None]], lo: date, hi: date) -> list[date]:
    """The days the segments stand for, month rows expanded to their days."""
    days: list[date] = []
    for span, first, last in parts:
        start, end = first or lo, last or hi
        day = start
        while day <= end:
            if span == "day":
                days.append(day)
                day += timedelta(days=1)
            else:
                month = day.month
                while day.month == month:
                    days.append(day)
                    day += timedelta(days=1)
    return days


def test_segments_cover_every_day_of_a_range_exactly_once() -> None:
    rng = random.Random(7)
    for _ in range(400):
        start = date(2025, 1, 1) + timedelta(days=rng.randint(0, 700))
        end = start + timedelta(days=rng.randint(0, 200))
        for grouping in ("day", "week", "month", "quarter", "all"):
            parts = [(s.span, s.first, s.last) for s in segments(start, end, grouping)]
            days = covered(parts, start, end)
            assert sorted(days) == [start + timedelta(days=n) for n in range((end - start).days + 1)], parts


def test_open_ranges_read_month_rows() -> None:
    assert [(s.span, s.first, s.last) for s in segments(None, None, "month")] == [("month", None, None)]
    assert [(s.span, s.first, s.last) for s in segments(None, date(2026, 3, 20), "all")] == [
        ("day", date(2026, 3, 1), date(2026, 3, 20)),
        ("month", None, date(2026, 2, 1)),
    ]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11-26", date(2026, 11, 26), date(2026, 11, 26)),
        ("2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_periods_parse_to_their_days(text: str, start: date, end: date) -> None:
    period = parse_period(text)
    assert (period.start, period.end) == (start, end)
    assert label(start, {"2026-W01": "week", "2026-Q4": "quarter"}.get(text, "day")) in (text, start.isoformat())


@pytest.mark.parametrize("text", ["2026-13", "2026-W60", "yesterday", "2026-Q5", "2026-02-30"])
def test_a_period_that_is_not_one_names_the_field(text: str) -> None:
    with pytest.raises(Problem) as refused:
        parse_period(text)
    assert refused.value.field == "period"


def test_quantiles_come_from_the_bucket_holding_the_nearest_rank() -> None:
    rng = random.Random(3)
    hours = [rng.expovariate(1 / 40) for _ in range(999)]
    counts = [0] * len(BUCKET_COLUMNS)
    for h in hours:
        counts[BUCKET_COLUMNS.index(bucket_of(h))] += 1
    ordered = sorted(hours)
    for q in (0.5, 0.9):
        found = quantile(counts, q)
        assert found is not None
        exact = ordered[int(q * 999 + 0.999999) - 1]
        assert found.lower <= exact < (found.upper or float("inf"))
        assert found.lower <= found.hours <= (found.upper or float("inf"))
    assert quantile([0] * len(BUCKET_COLUMNS), 0.5) is None
    assert bucket_of(2000) == BUCKET_COLUMNS[-1] and bucket_of(0) == BUCKET_COLUMNS[0]


def test_the_case_score_is_the_share_of_assessable_points_less_penalties() -> None:
    rules = ScoreRules()
    perfect = score_case(
        rules,
        counters={"signed": 1, "signed_on_time": 1, "completed": 1, "completed_on_time": 1},
        returned_without_cause=0,
        answer=Answer(resolved=True, satisfaction="satisfied"),
        final=True,
    )
    assert perfect["score"] == 100.0 and perfect["possible"] == 100
    rough = score_case(
        rules,
        counters={
            "signed": 1,
            "signed_on_time": 0,
            "completed": 1,
            "completed_on_time": 1,
            "reopened": 1,
            "extended": 2,
        },
        returned_without_cause=1,
        answer=Answer(resolved=True, satisfaction="basically_satisfied"),
        final=True,
    )
    # 80 of 100 points, less 10 (returned without cause), 10 (reopened) and 2 × 5 (extended)
    assert rough["score"] == 50.0 and rough["penalties"] == -30
    unreachable = score_case(
        rules, counters={"signed": 1, "completed": 1}, returned_without_cause=0, answer=None, final=True
    )
    assert unreachable["score"] == 0.0 and unreachable["possible"] == 30  # late on both, nothing else assessable
    assert score_case(rules, counters={}, returned_without_cause=0, answer=None, final=False)["score"] is None
    with pytest.raises(ValueError, match="basically_satisfied"):
        ScoreRules(satisfied=10, basically_satisfied=20)


def test_the_wilson_interval_matches_known_values() -> None:
    z = z_for(0.95)
    assert z == pytest.approx(1.959964, abs=1e-6)
    lower, upper = wilson(3, 3, z)
    assert lower == pytest.approx(0.43850, abs=1e-4) and upper == 1.0
    lower, upper = wilson(2900, 3000, z)
    assert lower == pytest.approx(0.95962, abs=1e-4) and upper == pytest.approx(0.97252, abs=1e-4)
    assert wilson(0, 0, z) == (0.0, 1.0)


def test_settings_refuse_a_bottom_up_share_below_the_rule_and_unknown_weights() -> None:
    with pytest.raises(ValueError, match="bottom_up_share"):
        EvaluationSettings(bottom_up_share=0.2)
    with pytest.raises(ValueError, match="stationed_bottom_up_share"):
        EvaluationSettings(stationed_bottom_up_share=0.5)
    with pytest.raises(ValueError, match="unknown composite weights"):
        EvaluationSettings(composite_weights={"speed": 1.0})
