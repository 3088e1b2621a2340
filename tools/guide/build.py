"""Build the city dispatch guide from the content modules and write shared/data/city_guide.json.

Run from the repository root:  uv run python -m tools.guide.build           (write the file)
                               uv run python -m tools.guide.build --check   (fail if the file is stale)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from shared.guide import DATA, Guide
from shared.jurisdiction import load_jurisdiction
from tools.guide.domains import DOMAINS
from tools.guide.model import K, Profile
from tools.guide.out_of_scope import OUT_OF_SCOPE
from tools.guide.units import UNITS

OUTPUT = DATA / "city_guide.json"
VERSION = "city-2026.11"
CATEGORY_COUNT = 283
KIND_COUNT = 545
REQUEST_TYPES = ("咨询", "求助", "投诉", "举报", "建议")
TERRITORIES = ("street", "district")

# sign-for hours and completion per urgency; completion in working days, or in clock hours for fast work.
_Limit = tuple[float, int | None, float | None]
TIME_LIMITS: dict[Profile, dict[str, _Limit]] = {
    "consult": {"normal": (4, 3, None), "urgent": (2, 1, None), "emergency": (0.5, None, 4)},
    "quick": {"normal": (2, 5, None), "urgent": (1, 2, None), "emergency": (0.5, None, 4)},
    "general": {"normal": (4, 13, None), "urgent": (2, 3, None), "emergency": (0.5, None, 8)},
    "complex": {"normal": (8, 15, None), "urgent": (4, 5, None), "emergency": (1, None, 24)},
    "utility": {"normal": (2, None, 24), "urgent": (1, None, 8), "emergency": (0.5, None, 4)},
    "hazard": {"normal": (2, 3, None), "urgent": (1, None, 24), "emergency": (0.5, None, 4)},
    "emergency": {"normal": (1, None, 24), "urgent": (0.5, None, 4), "emergency": (0.5, None, 2)},
}


def _profile(kind: K) -> Profile:
    if kind.tl is not None:
        return kind.tl
    if kind.urg == "emergency":
        return "emergency"
    return "consult" if kind.req.split() == ["咨询"] else "general"


def _time_limits(profile: Profile) -> dict[str, dict[str, float | int]]:
    limits: dict[str, dict[str, float | int]] = {}
    for urgency, (sign, days, hours) in TIME_LIMITS[profile].items():
        limit: dict[str, float | int] = {"sign_hours": sign}
        if days is not None:
            limit["complete_working_days"] = days
        if hours is not None:
            limit["complete_hours"] = hours
        limits[urgency] = limit
    return limits


def _kind(kind: K, *, code: str, category: str) -> dict[str, Any]:
    primary = {"territory": kind.p} if kind.p in TERRITORIES else {"unit": kind.p}
    return {
        "code": code,
        "category": category,
        "name": kind.name,
        "name_en": kind.en,
        "description": kind.desc,
        "primary": primary,
        "cooperating": kind.co.split(),
        "legal_basis": kind.law,
        "grid_duty": kind.grid,
        "street_duty": kind.street,
        "department_duty": kind.dept,
        "request_types": kind.req.split(),
        "keywords": kind.kw.split(),
        "examples": list(kind.ex),
        "urgency": kind.urg,
        "transfer_to": kind.to,
        "time_limits": _time_limits(_profile(kind)),
    }


def build() -> dict[str, Any]:
    """The guide as a JSON-ready dictionary, codes numbered in reading order."""
    categories: list[dict[str, str]] = []
    kinds: list[dict[str, Any]] = []
    for domain in DOMAINS:
        for category in domain.categories:
            ccode = f"C{len(categories) + 1:03d}"
            categories.append({"code": ccode, "domain": domain.code, "name": category.name, "name_en": category.en})
            for kind in category.kinds:
                kinds.append(_kind(kind, code=f"K{len(kinds) + 1:04d}", category=ccode))
    return {
        "version": VERSION,
        "name": f"jiesu city dispatch guide ({len(categories)} categories, {len(kinds)} kinds)",
        "domains": [{"code": d.code, "name": d.name, "name_en": d.en} for d in DOMAINS],
        "categories": categories,
        "kinds": kinds,
        "units": [{"code": c, "name": n, "name_en": e, "type": t} for c, n, e, t in UNITS],
        "out_of_scope": OUT_OF_SCOPE,
    }


def _bigrams(text: str) -> set[str]:
    return {a + b for a, b in itertools.pairwise(text)}


def problems(raw: dict[str, Any]) -> list[str]:
    """What is wrong with a built guide beyond what the loader checks."""
    found: list[str] = []
    kinds: list[dict[str, Any]] = raw["kinds"]
    if len(raw["categories"]) != CATEGORY_COUNT or len(kinds) != KIND_COUNT:
        found.append(f"{len(raw['categories'])} categories and {len(kinds)} kinds, not {CATEGORY_COUNT}/{KIND_COUNT}")
    owner: dict[str, str] = {}
    for kind in kinds:
        code = kind["code"]
        examples: list[str] = kind["examples"]
        if len(examples) < 3 or len(set(examples)) != len(examples):
            found.append(f"{code}: needs at least 3 distinct examples")
        for example in examples:
            if example in owner:
                found.append(f"{code}: example shared with {owner[example]}: {example}")
            owner[example] = code
        if not 3 <= len(kind["keywords"]) <= 8 or len(set(kind["keywords"])) != len(kind["keywords"]):
            found.append(f"{code}: needs 3 to 8 distinct keywords")
        if not kind["request_types"] or not set(kind["request_types"]) <= set(REQUEST_TYPES):
            found.append(f"{code}: bad request types {kind['request_types']}")
        if (kind["urgency"] == "emergency") != (kind["transfer_to"] is not None):
            found.append(f"{code}: emergencies, and only they, are transferred")
        if kind["primary"].get("unit") in kind["cooperating"]:
            found.append(f"{code}: primary unit also cooperating")
        if kind["legal_basis"] and not kind["legal_basis"].startswith("《"):
            found.append(f"{code}: legal basis should name a law in 《》")
        if len({kind["grid_duty"], kind["street_duty"], kind["department_duty"]}) != 3:
            found.append(f"{code}: grid, street and department duties must differ")
    for emergency in (k for k in kinds if k["transfer_to"]):
        for other in (k for k in kinds if not k["transfer_to"]):
            text = " ".join([other["name"], other["description"], *other["keywords"], *other["examples"]])
            hits = [kw for kw in emergency["keywords"] if kw in text]
            if hits:
                found.append(f"{other['code']}: contains emergency keyword(s) {hits} of {emergency['code']}")
    duties = [(k["grid_duty"], k["street_duty"], k["department_duty"]) for k in kinds]
    if len(set(duties)) != len(duties):
        found.append("two kinds have identical duties")
    return found


def near_duplicates(raw: dict[str, Any], threshold: float = 0.6) -> list[tuple[str, str, float]]:
    """Pairs of examples of different kinds whose character bigrams overlap a lot (a warning, not an error)."""
    items = [(k["code"], e, _bigrams(e)) for k in raw["kinds"] for e in k["examples"]]
    pairs: list[tuple[str, str, float]] = []
    for (ca, ea, ga), (cb, eb, gb) in itertools.combinations(items, 2):
        if ca != cb and ga and gb:
            score = len(ga & gb) / len(ga | gb)
            if score >= threshold:
                pairs.append((f"{ca} {ea}", f"{cb} {eb}", score))
    return pairs


def render(raw: dict[str, Any]) -> str:
    """The file text: UTF-8 JSON, one-space indent, trailing newline."""
    return json.dumps(raw, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the written file differs from a fresh build")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    raw = build()
    jurisdiction_units = [u.model_dump() for u in load_jurisdiction().units]
    known = {u["code"] for u in raw["units"]}
    Guide.model_validate({**raw, "units": raw["units"] + [u for u in jurisdiction_units if u["code"] not in known]})
    found = problems(raw)
    for problem in found:
        print("error:", problem, file=sys.stderr)
    for a, b, score in near_duplicates(raw):
        print(f"warning: similar examples ({score:.2f}): {a} | {b}", file=sys.stderr)
    if found:
        return 1
    text = render(raw)
    if args.check:
        if not args.output.exists() or args.output.read_text(encoding="utf-8") != text:
            print(f"{args.output} is stale; run: uv run python -m tools.guide.build", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    counts = f"{len(raw['categories'])} categories, {len(raw['kinds'])} kinds, {len(raw['units'])} units"
    print(f"wrote {args.output}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
