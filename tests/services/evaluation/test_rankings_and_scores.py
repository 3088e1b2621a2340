"""Fair rankings, composite unit scores with the towns' share, CSV export and the metric filters."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from services.evaluation import rollup_store
from services.evaluation.rollup import keys_for, unit_keys
from services.evaluation.schemas_metrics import MetricsPage
from tests.services.evaluation.feed import Evaluation, evaluation_app

DAY = date(2026, 11, 10)
PLACE = {"street": "110199001", "community": "110199001001", "grid": "11019900100101"}


@pytest.fixture
async def evaluation(tmp_path: Path) -> AsyncIterator[Evaluation]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    async with evaluation_app(url, tmp_path, stationed_units=["DEPT-S"]) as running:
        yield running


async def seed(
    evaluation: Evaluation, unit: str, counts: dict[str, float], *, kind: str = "K0101", ratings: tuple[int, ...] = ()
) -> None:
    """Roll-up state as events would leave it, written straight to the rows."""
    async with evaluation.app.state.runtime.sessions() as session, session.begin():
        keys = keys_for(unit=unit, kind=kind, category=kind[:3].replace("K", "C"), day=DAY, territory=PLACE)
        await rollup_store.bump(session, keys, counts)
        for score in ratings:
            await rollup_store.bump(
                session, unit_keys(unit, DAY), {"bottom_up_ratings": 1, "bottom_up_score_sum": score}
            )


async def test_a_unit_with_three_cases_does_not_top_one_with_three_thousand(evaluation: Evaluation) -> None:
    await seed(evaluation, "DEPT-SMALL", {"callbacks_counted": 3, "satisfied": 3})
    await seed(evaluation, "DEPT-BIG", {"callbacks_counted": 3000, "satisfied": 2900})
    await seed(evaluation, "DEPT-MID", {"callbacks_counted": 50, "satisfied": 45})
    params = {"metric": "satisfaction_rate", "level": "department", "period": "2026-11", "min_sample": "1"}
    page = (await evaluation.client.get("/v1/rankings", params=params)).json()
    assert [(u["rank"], u["unit_code"]) for u in page["ranked"]] == [
        (1, "DEPT-BIG"),
        (2, "DEPT-MID"),
        (3, "DEPT-SMALL"),
    ]
    small = page["ranked"][2]
    assert small["value"] == 1.0 and small["interval"] == {"lower": 0.4385, "upper": 1.0}
    assert small["ranked_by"] == small["interval"]["lower"]
    assert "Wilson" in page["rule"] and "95.0%" in page["rule"] and page["confidence"] == 0.95
    assert page["definition"]["denominator"] == "call-back answers that count"
    floor = (await evaluation.client.get("/v1/rankings", params=params | {"min_sample": "30"})).json()
    assert [u["unit_code"] for u in floor["ranked"]] == ["DEPT-BIG", "DEPT-MID"]
    assert [(u["unit_code"], u["rank"]) for u in floor["unranked"]] == [("DEPT-SMALL", None)]
    assert "fewer than 30" in floor["rule"]


async def test_a_rate_where_lower_is_better_ranks_by_the_upper_bound(evaluation: Evaluation) -> None:
    await seed(evaluation, "DEPT-A", {"dispatched": 1000, "returned": 20})
    await seed(evaluation, "DEPT-B", {"dispatched": 4, "returned": 0})
    params = {"metric": "return_rate", "period": "2026-11", "min_sample": "1", "confidence": "0.9"}
    page = (await evaluation.client.get("/v1/rankings", params=params)).json()
    assert [u["unit_code"] for u in page["ranked"]] == ["DEPT-A", "DEPT-B"]
    assert all(u["ranked_by"] == u["interval"]["upper"] for u in page["ranked"])
    assert "upper bound" in page["rule"] and "lowest first" in page["rule"] and "90.0%" in page["rule"]


async def test_composite_scores_give_towns_their_share_and_show_the_formula(evaluation: Evaluation) -> None:
    full: dict[str, float] = {
        "dispatched": 10,
        "signed": 10,
        "completed": 10,
        "completed_on_time": 10,
        "callbacks_counted": 10,
    }
    await seed(
        evaluation, "DEPT-A", {**full, "resolved": 10, "satisfied": 10, "scored": 10, "score_sum": 1000}, ratings=(1, 1)
    )
    await seed(
        evaluation, "DEPT-S", {**full, "resolved": 10, "satisfied": 10, "scored": 10, "score_sum": 1000}, ratings=(1,)
    )
    await seed(evaluation, "DEPT-N", {**full, "resolved": 5, "satisfied": 5, "scored": 10, "score_sum": 500})
    page = (await evaluation.client.get("/v1/unit-scores", params={"period": "2026-11"})).json()
    scores = {item["unit_code"]: item for item in page["items"]}
    assert scores["DEPT-A"]["case_part"] == 100.0 and scores["DEPT-A"]["bottom_up_part"] == 0.0
    assert scores["DEPT-A"]["composite"] == 70.0 and scores["DEPT-A"]["bottom_up_share"] == 0.3
    assert scores["DEPT-S"]["stationed"] and scores["DEPT-S"]["composite"] == 40.0  # 60% from the town
    n = scores["DEPT-N"]
    assert not n["bottom_up_applied"] and n["composite"] == n["case_part"] == 60.0
    assert "no town rated" in n["note"]
    assert page["weights"]["case_score"] == 0.4 and "bottom_up_part" in page["formula"]
    assert (page["bottom_up_share"], page["stationed_bottom_up_share"]) == (0.3, 0.6)
    assert [item["unit_code"] for item in page["items"]] == ["DEPT-A", "DEPT-N", "DEPT-S"]


async def test_metrics_export_as_csv_by_path_or_by_accept_header(evaluation: Evaluation) -> None:
    await seed(
        evaluation, "DEPT-A", {"dispatched": 4, "signed": 3, "callbacks": 2, "callbacks_counted": 2, "satisfied": 1}
    )
    by_path = await evaluation.client.get("/v1/metrics.csv", params={"grouping": "month"})
    by_accept = await evaluation.client.get("/v1/metrics", params={"grouping": "month"}, headers={"Accept": "text/csv"})
    assert by_path.headers["content-type"].startswith("text/csv")
    assert by_path.text == by_accept.text
    [row] = list(csv.DictReader(io.StringIO(by_path.text)))
    assert (row["unit_code"], row["period"], row["dispatched"]) == ("DEPT-A", "2026-11", "4")
    assert (row["response_rate"], row["response_rate_numerator"], row["response_rate_denominator"]) == (
        "0.75",
        "3",
        "4",
    )
    assert row["resolution_rate"] == "0.0" and row["satisfaction_rate"] == "0.5"
    assert row["on_time_completion_rate"] == ""  # nothing completed: no rate, not zero


async def test_metrics_split_by_kind_and_group_by_category(evaluation: Evaluation) -> None:
    await seed(evaluation, "DEPT-UM", {"dispatched": 2}, kind="K0101")
    await seed(evaluation, "DEPT-UM", {"dispatched": 3}, kind="K0102")
    await seed(evaluation, "DEPT-EE", {"dispatched": 1}, kind="K0501", ratings=(4,))
    split = (
        await evaluation.client.get("/v1/metrics", params={"unit": "DEPT-UM", "by": "kind", "grouping": "all"})
    ).json()
    assert [(r["kind_code"], r["dispatched"]) for r in split["items"]] == [("K0101", 2), ("K0102", 3)]
    categories = (await evaluation.client.get("/v1/metrics", params={"level": "category", "grouping": "all"})).json()
    assert [(r["unit_code"], r["dispatched"]) for r in categories["items"]] == [("C01", 5), ("C05", 1)]
    city = (await evaluation.client.get("/v1/metrics", params={"level": "city", "grouping": "quarter"})).json()
    [row] = city["items"]
    assert (row["unit_code"], row["period"], row["dispatched"], row["bottom_up_rating"]["ratings"]) == (
        "city",
        "2026-Q4",
        6,
        1,
    )
    lamps = (await evaluation.client.get("/v1/metrics", params={"level": "city", "category": "C01"})).json()
    assert [(r["unit_code"], r["dispatched"]) for r in lamps["items"]] == [("city", 5)]  # from the department rows
    grid = (await evaluation.client.get("/v1/metrics", params={"level": "grid", "grouping": "week"})).json()
    assert [(r["unit_code"], r["period"], r["dispatched"]) for r in grid["items"]] == [
        ("11019900100101", "2026-W46", 6)
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "grid", "kind": "K0101"}, None),
        ({"level": "kind", "by": "category"}, "by"),
        ({"from": "2026-11-20", "to": "2026-11-01"}, "from"),
        ({"level": "town"}, "level"),
    ],
)
async def test_metric_filters_that_make_no_sense_are_refused(
    evaluation: Evaluation, params: dict[str, str], field: str | None
) -> None:
    answer = await evaluation.client.get("/v1/metrics", params=params)
    assert answer.status_code in (400, 422) and answer.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert answer.json()["errors"][0]["field"] == field


async def test_rankings_refuse_a_period_that_is_not_one(evaluation: Evaluation) -> None:
    answer = await evaluation.client.get("/v1/rankings", params={"period": "last month"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "period"


async def test_every_metrics_page_conforms_to_its_documented_schema(evaluation: Evaluation) -> None:
    await seed(evaluation, "DEPT-UM", {"dispatched": 3, "completed": 2, "handling_count": 2, "h05": 2}, kind="K0101")
    await seed(evaluation, "DEPT-EE", {"dispatched": 1, "scored": 1, "score_sum": 90.0}, kind="K0501", ratings=(4,))
    for params in (
        {"grouping": "month"},
        {"by": "kind", "grouping": "week", "from": "2026-11-01", "to": "2026-11-30"},
        {"level": "grid", "grouping": "day"},
        {"level": "kind", "grouping": "quarter"},
        {"level": "city", "grouping": "all"},
    ):
        answer = await evaluation.client.get("/v1/metrics", params=params)
        assert answer.headers["content-type"] == "application/json"
        page = MetricsPage.model_validate_json(answer.text, strict=False)
        assert page.items and page.model_dump(mode="json") == answer.json()
    schema = (await evaluation.client.get("/openapi.json")).json()
    ok = schema["paths"]["/v1/metrics"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/MetricsPage") and "text/csv" in ok
