"""The dispatch guide (类/种 with their responsibility lists) and the unit registry, validated on load."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DATA = Path(__file__).parent / "data"
SEED_GUIDE = DATA / "seed_guide.json"
CITY_GUIDE = DATA / "city_guide.json"  # 283 categories, 545 kinds: what dispatch uses unless told otherwise

Urgency = Literal["normal", "urgent", "emergency"]
RequestType = Literal["咨询", "求助", "投诉", "举报", "建议"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Strict):
    """A responsible unit: department, utility, district, or street/town office."""

    code: str
    name: str
    name_en: str
    type: Literal["department", "utility", "district", "street", "town", "community"]


class Domain(_Strict):
    """First level (领域), as in the reference message taxonomy."""

    code: str
    name: str
    name_en: str


class Category(_Strict):
    """A category (类) of the guide."""

    code: str
    domain: str
    name: str
    name_en: str


class Primary(_Strict):
    """Primary responsibility (主体责任): a named unit, or the territory at a level (属地)."""

    unit: str | None = None
    territory: Literal["district", "street"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Primary:
        if (self.unit is None) == (self.territory is None):
            raise ValueError("primary names exactly one of unit or territory")
        return self


class TimeLimit(_Strict):
    """How long a unit has to sign for (签收) and to complete (办结) a case of one urgency.

    Signing is counted in clock hours or in working hours (09:00-17:00 on working days); completion in working
    days, working hours or, for urgent matters, clock hours. Working time follows China's holiday calendar.
    """

    sign_hours: float | None = Field(default=None, gt=0)
    sign_working_hours: float | None = Field(default=None, gt=0)
    complete_working_days: int | None = Field(default=None, ge=1)
    complete_working_hours: float | None = Field(default=None, gt=0)
    complete_hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_measure(self) -> TimeLimit:
        if (self.sign_hours is None) == (self.sign_working_hours is None):
            raise ValueError("give exactly one of sign_hours or sign_working_hours")
        completes = [self.complete_working_days, self.complete_working_hours, self.complete_hours]
        if sum(value is not None for value in completes) != 1:
            raise ValueError("give exactly one of complete_working_days, complete_working_hours or complete_hours")
        return self


class Kind(_Strict):
    """A kind (种): one row of the responsibility list, plus what the judge step needs."""

    code: str
    category: str
    name: str
    name_en: str
    description: str
    primary: Primary
    cooperating: list[str] = []
    legal_basis: str = ""
    grid_duty: str = ""
    street_duty: str = ""
    department_duty: str = ""
    request_types: list[RequestType]
    keywords: list[str] = Field(min_length=1)
    examples: list[str] = Field(min_length=3)
    urgency: Urgency = "normal"
    transfer_to: Literal["110", "119", "120", "122"] | None = None
    time_limits: dict[Urgency, TimeLimit]


class OutOfScope(_Strict):
    """A matter the centre does not take (不予受理), and the reason the hotline reads out."""

    code: str
    name: str
    keywords: list[str] = Field(min_length=1)
    reason: str


class Guide(_Strict):
    """A versioned dispatch guide; every reference must resolve."""

    version: str
    name: str
    domains: list[Domain]
    categories: list[Category]
    kinds: list[Kind]
    units: list[Unit]
    out_of_scope: list[OutOfScope] = []

    @model_validator(mode="after")
    def _references_resolve(self) -> Guide:
        domains = {d.code for d in self.domains}
        categories = {c.code for c in self.categories}
        units = {u.code for u in self.units}
        problems: list[str] = []
        for label, codes in (("domain", [d.code for d in self.domains]), ("category", list(categories))):
            if len(codes) != len(set(codes)):
                problems.append(f"duplicate {label} codes")
        if len({k.code for k in self.kinds}) != len(self.kinds):
            problems.append("duplicate kind codes")
        problems += [
            f"category {c.code}: unknown domain {c.domain}" for c in self.categories if c.domain not in domains
        ]
        for kind in self.kinds:
            if kind.category not in categories:
                problems.append(f"kind {kind.code}: unknown category {kind.category}")
            if kind.primary.unit is not None and kind.primary.unit not in units:
                problems.append(f"kind {kind.code}: unknown primary unit {kind.primary.unit}")
            problems += [f"kind {kind.code}: unknown cooperating unit {u}" for u in kind.cooperating if u not in units]
            if kind.urgency not in kind.time_limits:
                problems.append(f"kind {kind.code}: no time limit for its urgency {kind.urgency}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def kind_by_code(self) -> dict[str, Kind]:
        return {k.code: k for k in self.kinds}

    @cached_property
    def category_by_code(self) -> dict[str, Category]:
        return {c.code: c for c in self.categories}

    @cached_property
    def unit_by_code(self) -> dict[str, Unit]:
        return {u.code: u for u in self.units}

    def domain_of(self, kind: Kind) -> str:
        """The domain code of a kind."""
        return self.category_by_code[kind.category].domain


def load_guide(path: Path | None = None, *, extra_units: list[Unit] | None = None) -> Guide:
    """Read and validate a guide file (the seed guide when no path is given)."""
    raw = json.loads((path or SEED_GUIDE).read_text(encoding="utf-8"))
    if extra_units:
        known = {u["code"] for u in raw["units"]}
        raw["units"] += [u.model_dump() for u in extra_units if u.code not in known]
    return Guide.model_validate(raw)
