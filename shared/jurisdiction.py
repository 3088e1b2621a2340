"""The jurisdiction (区→街道/乡镇→社区/村→网格) from GeoJSON, and placing a report in it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared.guide import DATA, Unit

SEED_JURISDICTION = DATA / "seed_jurisdiction.geojson"
Level = Literal["district", "street", "community", "grid"]
LEVELS: tuple[Level, ...] = ("district", "street", "community", "grid")


@dataclass(frozen=True, slots=True)
class Area:
    """One area of the jurisdiction with its polygon rings (lon, lat)."""

    code: str
    name: str
    level: Level
    parent: str | None
    unit: str | None
    aliases: tuple[str, ...]
    rings: tuple[tuple[tuple[float, float], ...], ...]
    bbox: tuple[float, float, float, float]

    def contains(self, lon: float, lat: float) -> bool:
        """Point-in-polygon by ray casting over the outer ring, holes excluded."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        inside = _in_ring(self.rings[0], lon, lat)
        return inside and not any(_in_ring(hole, lon, lat) for hole in self.rings[1:])


def _in_ring(ring: tuple[tuple[float, float], ...], x: float, y: float) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a report lies, and how that was found."""

    codes: dict[str, str]
    names: dict[str, str]
    method: Literal["grid_code", "location", "address"]

    @property
    def street(self) -> str | None:
        return self.codes.get("street")


class _CellIndex:
    """A uniform-grid spatial index: each cell lists the areas whose bounding box touches it."""

    def __init__(self, areas: list[Area], *, cell_degrees: float = 0.005) -> None:
        self.size = cell_degrees
        self.cells: dict[tuple[int, int], list[Area]] = {}
        for area in areas:
            x0, y0, x1, y1 = area.bbox
            for i in range(self._cell(x0), self._cell(x1) + 1):
                for j in range(self._cell(y0), self._cell(y1) + 1):
                    self.cells.setdefault((i, j), []).append(area)

    def _cell(self, value: float) -> int:
        return int(value // self.size)

    def candidates(self, lon: float, lat: float) -> list[Area]:
        """Areas that may contain the point (bounding boxes only)."""
        return self.cells.get((self._cell(lon), self._cell(lat)), [])


class Jurisdiction:
    """Areas by code, with lookups by grid code, point and address text."""

    def __init__(self, areas: list[Area], units: list[Unit]) -> None:
        self.areas = {a.code: a for a in areas}
        self.units = units
        self._grids = [a for a in areas if a.level == "grid"]
        self._cells = _CellIndex(self._grids)
        names = [(n, a) for a in areas for n in (a.name, *a.aliases) if n]
        self._names = sorted(names, key=lambda pair: (-len(pair[0]), LEVELS.index(pair[1].level)))

    def _placement(self, area: Area, method: Literal["grid_code", "location", "address"]) -> Placement:
        codes: dict[str, str] = {}
        names: dict[str, str] = {}
        current: Area | None = area
        while current is not None:
            codes[current.level] = current.code
            names[current.level] = current.name
            current = self.areas.get(current.parent) if current.parent else None
        return Placement(codes=codes, names=names, method=method)

    def by_grid_code(self, grid_code: str) -> Placement | None:
        area = self.areas.get(grid_code)
        return self._placement(area, "grid_code") if area is not None else None

    def by_location(self, lon: float, lat: float) -> Placement | None:
        for grid in self._cells.candidates(lon, lat):
            if grid.contains(lon, lat):
                return self._placement(grid, "location")
        return None

    def by_address(self, text: str) -> Placement | None:
        for name, area in self._names:
            if name in text:
                return self._placement(area, "address")
        return None

    def locate(
        self, *, grid_code: str | None, lon: float | None, lat: float | None, address: str | None
    ) -> tuple[Placement | None, list[str]]:
        """Place a report by grid code, then GPS point, then address; say why each step failed."""
        reasons: list[str] = []
        if grid_code:
            found = self.by_grid_code(grid_code)
            if found:
                return found, reasons
            reasons.append(f"unknown grid code {grid_code}")
        if lon is not None and lat is not None:
            found = self.by_location(lon, lat)
            if found:
                return found, reasons
            reasons.append(f"point ({lat}, {lon}) lies outside the jurisdiction")
        if address:
            found = self.by_address(address)
            if found:
                return found, reasons
            reasons.append("address matches no known place")
        if not reasons:
            reasons.append("no grid code, location or address")
        return None, reasons

    def unit_for(self, placement: Placement, level: Literal["district", "street"]) -> str | None:
        """The unit responsible for the territory at a level (属地)."""
        code = placement.codes.get(level)
        area = self.areas.get(code) if code else None
        return area.unit if area else None


def load_jurisdiction(path: Path | None = None) -> Jurisdiction:
    """Read a GeoJSON FeatureCollection of areas (Polygon or MultiPolygon's first polygon)."""
    raw: dict[str, Any] = json.loads((path or SEED_JURISDICTION).read_text(encoding="utf-8"))
    areas: list[Area] = []
    for feature in raw["features"]:
        props = feature["properties"]
        geometry = feature["geometry"]
        polygon = geometry["coordinates"] if geometry["type"] == "Polygon" else geometry["coordinates"][0]
        rings = tuple(tuple((float(x), float(y)) for x, y, *_ in ring) for ring in polygon)
        xs = [p[0] for p in rings[0]]
        ys = [p[1] for p in rings[0]]
        if props["level"] not in LEVELS:
            raise ValueError(f"area {props['code']}: unknown level {props['level']}")
        areas.append(
            Area(
                code=str(props["code"]),
                name=props["name"],
                level=props["level"],
                parent=props.get("parent"),
                unit=props.get("unit"),
                aliases=tuple(props.get("aliases", [])),
                rings=rings,
                bbox=(min(xs), min(ys), max(xs), max(ys)),
            )
        )
    units = [Unit.model_validate(u) for u in raw.get("units", [])]
    return Jurisdiction(areas, units)
