"""Fair rankings (Wilson score bounds, a minimum sample) and composite unit scores with the bottom-up share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.metrics import RATES, rate_of, sums
from services.evaluation.periods import Period
from services.evaluation.schemas_metrics import (
    Interval,
    RankedUnit,
    RankingPage,
    RankLevel,
    ScorePart,
    UnitScore,
    UnitScorePage,
)
from services.evaluation.settings import EvaluationSettings


def z_for(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (0.95 → 1.96)."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    denominator = 1 + z2 / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


async def rankings(
    session: AsyncSession,
    *,
    metric: str,
    level: RankLevel,
    period: Period,
    confidence: float,
    min_sample: int,
) -> RankingPage:
    """Units ranked by the pessimistic end of the Wilson interval of the metric; small samples listed apart."""
    spec = RATES[metric]
    z = z_for(confidence)
    found = await sums(session, level=level, grouping="all", date_from=period.start, date_to=period.end)
    higher = spec.better == "higher"
    ranked: list[RankedUnit] = []
    unranked: list[RankedUnit] = []
    for (code, _kind, _category, _period), counters in found.items():
        measured = rate_of(metric, counters)
        if measured.denominator == 0:
            continue
        lower, upper = wilson(measured.numerator, measured.denominator, z)
        entry = RankedUnit(
            rank=None,
            unit_code=code,
            value=measured.value,
            numerator=measured.numerator,
            denominator=measured.denominator,
            interval=Interval(lower=round(lower, 4), upper=round(upper, 4)),
            ranked_by=round(lower if higher else upper, 4),
        )
        (ranked if measured.denominator >= min_sample else unranked).append(entry)
    ranked.sort(key=lambda e: (-(e.ranked_by or 0) if higher else (e.ranked_by or 0), -e.denominator, e.unit_code))
    for position, entry in enumerate(ranked, start=1):
        entry.rank = position
    unranked.sort(key=lambda e: (-e.denominator, e.unit_code))
    bound = "lower" if higher else "upper"
    direction = "highest first" if higher else "lowest first"
    rule = (
        f"ranked by the {bound} bound of the Wilson score interval at {confidence:.1%} confidence (z = {z:.3f}), "
        f"{direction}: a unit must show its rate with enough cases to rank high; ties go to the larger sample. "
        f"Units with fewer than {min_sample} in the denominator ({spec.denominator_text}) are listed unranked."
    )
    return RankingPage(
        metric=metric,
        definition=spec.definition(),
        level=level,
        period=period.name,
        date_from=period.start,
        date_to=period.end,
        confidence=confidence,
        z=round(z, 4),
        min_sample=min_sample,
        rule=rule,
        ranked=ranked,
        unranked=unranked,
    )


FORMULA = (
    "case_part = Σ weight × part ÷ Σ weight over the parts with data (each part 0–100: mean per-case score, rates × "
    "100); bottom_up_part = (mean town rating − 1) ÷ 4 × 100; composite = (1 − share) × case_part + share × "
    "bottom_up_part, with share = bottom_up_share, or stationed_bottom_up_share for units stationed in a town. A "
    "unit no town rated in the period keeps its case_part as the composite, marked bottom_up_applied = false."
)


def _parts(counters: Mapping[str, float], weights: Mapping[str, float]) -> list[ScorePart]:
    parts: list[ScorePart] = []
    for name, weight in weights.items():
        if name == "case_score":
            value = counters["score_sum"] / counters["scored"] if counters["scored"] else None
        else:
            measured = rate_of(name, counters)
            value = None if measured.value is None else measured.value * 100
        parts.append(ScorePart(part=name, value=None if value is None else round(value, 2), weight=weight))
    return parts


def unit_score(code: str, counters: Mapping[str, float], settings: EvaluationSettings, *, level: str) -> UnitScore:
    """One unit's composite score."""
    parts = _parts(counters, settings.composite_weights)
    weighted = [(p.value, p.weight) for p in parts if p.value is not None and p.weight > 0]
    total_weight = sum(w for _, w in weighted)
    case_part = round(sum(v * w for v, w in weighted) / total_weight, 2) if total_weight else None
    ratings = int(counters["bottom_up_ratings"])
    bottom_up = round((counters["bottom_up_score_sum"] / ratings - 1) / 4 * 100, 2) if ratings else None
    stationed = code in settings.stationed_units
    share = settings.stationed_bottom_up_share if stationed else settings.bottom_up_share
    note: str | None = None
    if level != "department":
        applied, composite, share = False, case_part, 0.0
        note = "towns rate departments; territorial levels have no bottom-up part"
    elif bottom_up is None:
        applied, composite = False, case_part
        note = "no town rated this unit in the period; the composite is the case-based part alone"
    elif case_part is None:
        applied, composite = True, None
        note = "no case-based data in the period"
    else:
        applied, composite = True, round((1 - share) * case_part + share * bottom_up, 2)
    return UnitScore(
        unit_code=code,
        stationed=stationed,
        case_part=case_part,
        case_parts=parts,
        bottom_up_part=bottom_up,
        bottom_up_ratings=ratings,
        bottom_up_share=share,
        bottom_up_applied=applied,
        composite=composite,
        note=note,
    )


async def unit_scores(
    session: AsyncSession, settings: EvaluationSettings, *, level: RankLevel, period: Period
) -> UnitScorePage:
    """Composite scores of every unit at a level in a period, best first (units without a score last)."""
    found = await sums(session, level=level, grouping="all", date_from=period.start, date_to=period.end)
    items = [unit_score(code, counters, settings, level=level) for (code, *_rest), counters in found.items()]
    items.sort(key=lambda s: (s.composite is None, -(s.composite or 0), s.unit_code))
    return UnitScorePage(
        level=level,
        period=period.name,
        date_from=period.start,
        date_to=period.end,
        formula=FORMULA,
        weights=dict(settings.composite_weights),
        bottom_up_share=settings.bottom_up_share,
        stationed_bottom_up_share=settings.stationed_bottom_up_share,
        items=items,
    )
