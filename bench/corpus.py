"""Realistic reports of all three sources, from the guide's example phrasings and the sample jurisdiction."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

from shared.guide import DATA, load_guide
from shared.jurisdiction import load_jurisdiction

CITY_GUIDE = DATA / "city_guide.json"
DETAILS = ["", "已经好几天了", "希望尽快处理", "多次反映没有结果", "影响周边居民生活", "请相关部门核实"]


class Corpus:
    """Draws reports: 60% hotline, 30% grid (with grid code and point), 10% town (with whistled departments)."""

    def __init__(self, *, seed: int = 7, guide_path: Path | None = None) -> None:
        self.random = random.Random(seed)
        jurisdiction = load_jurisdiction()
        path = guide_path or (CITY_GUIDE if CITY_GUIDE.exists() else None)
        self.guide = load_guide(path, extra_units=jurisdiction.units)
        self.kinds = [k for k in self.guide.kinds if not k.transfer_to]
        self.grids = [a for a in jurisdiction.areas.values() if a.level == "grid"]
        self.places = [n for a in jurisdiction.areas.values() for n in (a.name, *a.aliases)]
        self.departments = [u.code for u in self.guide.units if u.type == "department"]

    def _point(self) -> tuple[str, dict[str, float]]:
        grid = self.random.choice(self.grids)
        x0, y0, x1, y1 = grid.bbox
        return grid.code, {"lat": self.random.uniform(y0, y1), "lon": self.random.uniform(x0, x1)}

    def report(self) -> dict[str, Any]:
        """One report body for POST /v1/reports."""
        kind = self.random.choice(self.kinds)
        text = f"{self.random.choice(kind.examples)}{self.random.choice(DETAILS)}"
        roll = self.random.random()
        body: dict[str, Any] = {"external_id": uuid.uuid4().hex, "content": text}
        if roll < 0.6:
            phone = f"13{self.random.randrange(10**9):09d}"
            body |= {
                "source": "hotline",
                "address": f"{self.random.choice(self.places)}{self.random.randrange(1, 200)}号",
                "reporter": {"name": "市民", "phone": phone},
            }
        elif roll < 0.9:
            grid, point = self._point()
            body |= {"source": "grid", "grid_code": grid, "location": point, "kind_code": kind.code}
        else:
            _, point = self._point()
            body |= {
                "source": "town",
                "location": point,
                "requested_departments": self.random.sample(self.departments, k=min(2, len(self.departments))),
            }
        return body
