"""The per-case score (按件考核): the share of assessable points a unit earned, less penalties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.evaluation.settings import ScoreRules

FORMULA = (
    "score = 100 × earned ÷ possible + penalties, clamped to 0..100; possible sums the rewards that could be "
    "assessed (an unreachable respondent, or an answer that was not the unit's fault, assesses neither resolution "
    "nor satisfaction); penalties: returns sent back to the same unit, reopened rounds, granted extensions"
)


@dataclass(frozen=True, slots=True)
class Answer:
    """The call-back answer a case is judged by (the last one that counts against the unit)."""

    resolved: bool
    satisfaction: str


def score_case(
    rules: ScoreRules,
    *,
    counters: Mapping[str, float],
    returned_without_cause: int,
    answer: Answer | None,
    final: bool,
) -> dict[str, Any]:
    """A case's score with its breakdown; ``counters`` are those of the assignment that handled it."""
    items: list[dict[str, Any]] = []

    def reward(rule: str, possible: float, earned: float, note: str) -> None:
        items.append({"rule": rule, "points": earned, "possible": possible, "note": note})

    if counters.get("signed"):
        on_time = bool(counters.get("signed_on_time"))
        reward("signed_on_time", rules.signed_on_time, rules.signed_on_time if on_time else 0, _yes(on_time, "signed"))
    if counters.get("completed"):
        on_time = bool(counters.get("completed_on_time"))
        points = rules.completed_on_time if on_time else 0
        reward("completed_on_time", rules.completed_on_time, points, _yes(on_time, "completed"))
    if answer is not None:
        reward("resolved", rules.resolved, rules.resolved if answer.resolved else 0, f"resolved: {answer.resolved}")
        points = {"satisfied": rules.satisfied, "basically_satisfied": rules.basically_satisfied}.get(
            answer.satisfaction, 0.0
        )
        reward("satisfied", rules.satisfied, points, answer.satisfaction)
    penalties = (
        ("returned_without_cause", returned_without_cause, rules.returned_without_cause),
        ("reopened", int(counters.get("reopened", 0)), rules.reopened),
        ("extended", int(counters.get("extended", 0)), rules.extended),
    )
    for rule, times, points in penalties:
        if times and points:
            items.append({"rule": rule, "points": times * points, "possible": 0.0, "note": f"{times} × {points:g}"})
    earned = sum(i["points"] for i in items if i["possible"])
    possible = sum(i["possible"] for i in items)
    penalty = sum(i["points"] for i in items if not i["possible"])
    score = None if possible == 0 else round(min(100.0, max(0.0, 100 * earned / possible + penalty)), 1)
    return {
        "score": score,
        "final": final,
        "earned": earned,
        "possible": possible,
        "penalties": penalty,
        "items": items,
        "formula": FORMULA,
        "rules": rules.model_dump(),
    }


def _yes(on_time: bool, what: str) -> str:
    return f"{what} on time" if on_time else f"{what} late"
