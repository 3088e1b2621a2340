"""The guide's three levels as the classifier sees them: codes, names, parents, and which level a label set is."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.guide import Guide

Level = Literal["domain", "category", "kind"]
LEVELS: tuple[Level, ...] = ("domain", "category", "kind")


class LabelError(ValueError):
    """Labels that name nothing at any level of the guide."""


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a label sits: its domain, and its category and kind when the label is that fine."""

    domain: str
    category: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    """Domain (领域) → category (类) → kind (种): names by code and each code's parent."""

    names: dict[Level, dict[str, str]]
    parents: dict[Level, dict[str, str]]
    source: str

    @classmethod
    def from_guide(cls, guide: Guide) -> Taxonomy:
        return cls(
            names={
                "domain": {d.code: d.name for d in guide.domains},
                "category": {c.code: c.name for c in guide.categories},
                "kind": {k.code: k.name for k in guide.kinds},
            },
            parents={
                "domain": {},
                "category": {c.code: c.domain for c in guide.categories},
                "kind": {k.code: k.category for k in guide.kinds},
            },
            source=f"{guide.name} {guide.version}",
        )

    def to_json(self) -> dict[str, Any]:
        return {"names": self.names, "parents": self.parents, "source": self.source}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Taxonomy:
        return cls(
            names={level: dict(raw["names"][level]) for level in LEVELS},
            parents={level: dict(raw["parents"][level]) for level in LEVELS},
            source=str(raw["source"]),
        )

    def codes(self, level: Level) -> list[str]:
        return list(self.names[level])

    def up(self, code: str, *, level: Level, to: Level) -> str:
        """The ancestor of a code at a coarser (or the same) level."""
        if LEVELS.index(to) > LEVELS.index(level):
            raise ValueError(f"cannot go from {level} down to {to}")
        while level != to:
            code = self.parents[level][code]
            level = LEVELS[LEVELS.index(level) - 1]
        return code

    def lineage(self, code: str, level: Level) -> Lineage:
        """Domain, category and kind of a code (finer levels than the code's own are None)."""
        path = {lv: self.up(code, level=level, to=lv) for lv in LEVELS[: LEVELS.index(level) + 1]}
        return Lineage(domain=path["domain"], category=path.get("category"), kind=path.get("kind"))

    def lookup(self, level: Level) -> dict[str, str]:
        """Every code and every unambiguous name of a level, mapped to its code."""
        table = {code: code for code in self.names[level]}
        by_name: dict[str, set[str]] = {}
        for code, name in self.names[level].items():
            by_name.setdefault(name.strip(), set()).add(code)
        for name, codes in by_name.items():
            if len(codes) == 1 and name not in table:
                table[name] = next(iter(codes))
        return table

    def detect(self, labels: Iterable[str]) -> tuple[Level, dict[str, str]]:
        """The level whose codes or names cover every distinct label (the coarsest if several do), and the map."""
        distinct = sorted({label.strip() for label in labels})
        if not distinct:
            raise LabelError("no labels given")
        best: tuple[int, Level, list[str]] | None = None
        for level in LEVELS:
            table = self.lookup(level)
            unknown = [label for label in distinct if label not in table]
            if not unknown:
                return level, {label: table[label] for label in distinct}
            if best is None or len(unknown) < best[0]:
                best = (len(unknown), level, unknown)
        assert best is not None
        count, level, unknown = best
        shown = ", ".join(unknown[:10]) + (" ..." if count > 10 else "")
        raise LabelError(
            f"{count} of {len(distinct)} distinct labels are neither codes nor names of any level of the guide "
            f"({self.source}); closest is {level} level, which lacks: {shown}. "
            "Use domain, category or kind codes or names of the guide, or pass the guide they come from (--guide)."
        )


def guide_rows(guide: Guide) -> list[tuple[str, str, str]]:
    """Training rows made from the guide itself: (subject, detail, kind code) for each kind's texts."""
    rows: list[tuple[str, str, str]] = []
    for kind in guide.kinds:
        category = guide.category_by_code[kind.category].name
        rows.append((kind.name, f"{category} {kind.description}", kind.code))
        rows.append(("", " ".join(kind.keywords), kind.code))
        rows += [("", example, kind.code) for example in kind.examples]
    return rows


def rows_at_level(rows: Sequence[tuple[str, str, str]], taxonomy: Taxonomy, level: Level) -> list[tuple[str, str, str]]:
    """Kind-labelled rows relabelled with the kinds' ancestors at a level."""
    return [(s, d, taxonomy.up(code, level="kind", to=level)) for s, d, code in rows]
