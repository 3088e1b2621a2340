"""The city dispatch guide (283 类, 545 种) loads, is complete, and is what its generator writes."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.guide import DATA, Guide, load_guide
from shared.jurisdiction import load_jurisdiction
from tools.guide.build import build, render

CITY_GUIDE = DATA / "city_guide.json"

# The fifteen first-level classes of the reference message taxonomy (一级分类).
TAXONOMY_FIRST_LEVEL = {
    "城乡建设",
    "党务政务",
    "国土资源",
    "环境保护",
    "纪检监察",
    "交通运输",
    "经济管理",
    "科技与信息产业",
    "民政",
    "农村农业",
    "商贸旅游",
    "卫生计生",
    "政法",
    "教育文体",
    "劳动和社会保障",
}
SEED_DOMAIN_CODES = {
    "urban_rural_construction",
    "environment",
    "transport",
    "labour_social_security",
    "commerce_tourism",
    "health",
    "education_culture_sports",
}


@pytest.fixture(scope="module")
def guide() -> Guide:
    return load_guide(CITY_GUIDE, extra_units=load_jurisdiction().units)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(CITY_GUIDE).read_text(encoding="utf-8"))
    return loaded


def test_the_guide_has_283_categories_and_545_kinds(guide: Guide) -> None:
    assert (len(guide.categories), len(guide.kinds)) == (283, 545)
    assert guide.version == "city-2026.11"
    assert [c.code for c in guide.categories] == [f"C{i:03d}" for i in range(1, 284)]
    assert [k.code for k in guide.kinds] == [f"K{i:04d}" for i in range(1, 546)]


def test_domains_are_the_fifteen_first_level_classes_and_keep_the_seed_codes(guide: Guide) -> None:
    assert {d.name for d in guide.domains} == TAXONOMY_FIRST_LEVEL
    assert len(guide.domains) == 15
    assert {d.code for d in guide.domains} >= SEED_DOMAIN_CODES
    assert all(re.fullmatch(r"[a-z][a-z_]*", d.code) for d in guide.domains)


def test_every_domain_has_categories_and_every_category_has_kinds(guide: Guide) -> None:
    per_domain = Counter(c.domain for c in guide.categories)
    assert set(per_domain) == {d.code for d in guide.domains}
    per_category = Counter(k.category for k in guide.kinds)
    assert set(per_category) == {c.code for c in guide.categories}


def test_seed_units_keep_their_codes_and_territory_units_come_from_the_jurisdiction(raw: dict[str, Any]) -> None:
    seed = json.loads((DATA / "seed_guide.json").read_text(encoding="utf-8"))
    units = {u["code"]: u for u in raw["units"]}
    for unit in seed["units"]:
        assert units[unit["code"]] == unit
    assert {u["type"] for u in raw["units"]} == {"department", "utility"}
    assert not {u.code for u in load_jurisdiction().units} & set(units)


def test_every_kind_names_a_primary_and_known_cooperating_units(guide: Guide) -> None:
    units = guide.unit_by_code
    for kind in guide.kinds:
        assert (kind.primary.unit in units) or kind.primary.territory in ("street", "district"), kind.code
        assert all(u in units and u != kind.primary.unit for u in kind.cooperating), kind.code


def test_every_kind_is_fully_described(guide: Guide) -> None:
    for kind in guide.kinds:
        assert kind.name and kind.name_en and kind.description, kind.code
        assert kind.grid_duty and kind.street_duty and kind.department_duty, kind.code
        assert kind.request_types, kind.code
        assert 3 <= len(kind.keywords) <= 8 and len(set(kind.keywords)) == len(kind.keywords), kind.code
        assert set(kind.time_limits) == {"normal", "urgent", "emergency"}, kind.code
        assert not kind.legal_basis or kind.legal_basis.startswith("《"), kind.code


def test_duties_are_specific_to_each_kind(guide: Guide) -> None:
    duties = [(k.grid_duty, k.street_duty, k.department_duty) for k in guide.kinds]
    assert len(set(duties)) == len(duties)


def test_every_kind_has_at_least_three_distinct_examples(guide: Guide) -> None:
    for kind in guide.kinds:
        assert len(kind.examples) >= 3, kind.code
        assert len(set(kind.examples)) == len(kind.examples), kind.code


def test_no_two_kinds_share_an_example(guide: Guide) -> None:
    counts = Counter(example for kind in guide.kinds for example in kind.examples)
    shared = [example for example, n in counts.items() if n > 1]
    assert shared == []


def test_emergencies_and_only_emergencies_are_transferred(guide: Guide) -> None:
    emergencies = [k for k in guide.kinds if k.urgency == "emergency"]
    assert emergencies
    assert all(k.transfer_to in ("110", "119", "120", "122") for k in emergencies)
    assert all(k.transfer_to is None for k in guide.kinds if k.urgency != "emergency")
    assert {k.transfer_to for k in emergencies} == {"110", "119", "120", "122"}


def test_emergency_keywords_do_not_occur_in_ordinary_kinds(guide: Guide) -> None:
    """The judge transfers any text holding an emergency keyword, so ordinary kinds must not contain one."""
    keywords = {kw for k in guide.kinds if k.transfer_to for kw in k.keywords}
    for kind in guide.kinds:
        if kind.transfer_to:
            continue
        text = " ".join([kind.name, kind.description, *kind.keywords, *kind.examples])
        assert [kw for kw in keywords if kw in text] == [], kind.code


def test_each_emergency_example_holds_one_of_its_keywords_or_reads_as_it(guide: Guide) -> None:
    for kind in guide.kinds:
        if kind.transfer_to:
            hits = [e for e in kind.examples if any(kw in e for kw in kind.keywords)]
            assert len(hits) >= 2, kind.code


def test_the_file_is_what_the_generator_writes(raw: dict[str, Any]) -> None:
    built = build()
    assert built == raw
    assert render(built) == CITY_GUIDE.read_text(encoding="utf-8")
