"""The seed guide and jurisdiction load and validate; the guide refuses broken references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.guide import SEED_GUIDE, load_guide
from shared.jurisdiction import load_jurisdiction


def test_every_reference_of_the_seed_guide_resolves() -> None:
    jurisdiction = load_jurisdiction()
    guide = load_guide(extra_units=jurisdiction.units)
    assert len(guide.kinds) >= 12
    assert all(len(kind.examples) >= 3 for kind in guide.kinds)
    assert all(kind.primary.unit or kind.primary.territory for kind in guide.kinds)


def test_a_guide_with_an_unknown_unit_is_refused_with_the_kind_named(tmp_path: Path) -> None:
    raw = json.loads(SEED_GUIDE.read_text(encoding="utf-8"))
    raw["kinds"][0]["primary"] = {"unit": "DEPT-NOWHERE"}
    broken = tmp_path / "guide.json"
    broken.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValidationError, match="K0101: unknown primary unit DEPT-NOWHERE"):
        load_guide(broken)


def test_a_report_is_placed_by_grid_code_then_point_then_address() -> None:
    j = load_jurisdiction()
    by_code = j.locate(grid_code="11019900100102", lon=None, lat=None, address=None)[0]
    assert by_code is not None and by_code.method == "grid_code" and by_code.street == "110199001"
    by_point = j.locate(grid_code="nope", lon=116.37, lat=39.95, address=None)
    assert by_point[0] is not None and by_point[0].street == "110199002" and by_point[0].method == "location"
    assert by_point[1] == ["unknown grid code nope"]
    by_name = j.locate(grid_code=None, lon=None, lat=None, address="滨河公园北门")[0]
    assert by_name is not None and by_name.street == "110199002" and by_name.method == "address"
    nowhere, reasons = j.locate(grid_code=None, lon=0.0, lat=0.0, address="火星")
    assert nowhere is None and len(reasons) == 2
