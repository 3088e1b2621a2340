"""The guide's kinds (种) as GeoReport services, with their attributes and service notices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from services.intake.open311.documents import Attribute, AttributeValue, Service, ServiceDefinition
from shared.guide import Guide, Kind, TimeLimit, load_guide
from shared.jurisdiction import load_jurisdiction

# Request types (诉求类型) as list keys a form can carry.
REQUEST_TYPE_KEYS = {"咨询": "consult", "求助": "help", "投诉": "complain", "举报": "report", "建议": "suggest"}
REQUEST_TYPE = "request_type"
EMERGENCY = "emergency_notice"


def time_limit_text(limit: TimeLimit) -> str:
    """How long completion (办结) may take, in words."""
    if limit.complete_working_days is not None:
        return f"{limit.complete_working_days}个工作日内办结"
    if limit.complete_working_hours is not None:
        return f"{limit.complete_working_hours:g}个工作小时内办结"
    return f"{limit.complete_hours:g}小时内办结"


def attributes_of(kind: Kind) -> list[Attribute]:
    """What a service asks beyond the description: the request type when the kind has several, and, for
    emergencies the centre hands on (110/119/120/122), a notice to call that number instead."""
    attributes: list[Attribute] = []
    if len(kind.request_types) > 1:
        attributes.append(
            Attribute(
                variable=True,
                code=REQUEST_TYPE,
                datatype="singlevaluelist",
                required=False,
                datatype_description="选择一项",
                order=len(attributes) + 1,
                description="诉求类型",
                values=[AttributeValue(key=REQUEST_TYPE_KEYS[t], name=t) for t in kind.request_types],
            )
        )
    if kind.transfer_to is not None:
        attributes.append(
            Attribute(
                variable=False,
                code=EMERGENCY,
                datatype="text",
                required=False,
                order=len(attributes) + 1,
                description=f"情况紧急（有人员伤亡或险情正在发生）请直接拨打{kind.transfer_to}",
            )
        )
    return attributes


@dataclass(frozen=True)
class Catalogue:
    """The services one guide offers, and the names of the units that handle them."""

    guide: Guide
    changed_at: datetime

    @classmethod
    def load(cls, *, guide_path: Path, jurisdiction_path: Path | None) -> Catalogue:
        """Read and validate the guide (with the jurisdiction's units, as dispatch does)."""
        guide = load_guide(guide_path, extra_units=load_jurisdiction(jurisdiction_path).units)
        changed_at = datetime.fromtimestamp(guide_path.stat().st_mtime, UTC).replace(microsecond=0)
        return cls(guide=guide, changed_at=changed_at)

    @cached_property
    def services(self) -> list[Service]:
        """Every kind as a service, in guide order."""
        return [
            Service(
                service_code=kind.code,
                service_name=kind.name,
                description=kind.description,
                metadata=bool(self.definitions[kind.code].attributes),
                type="realtime",
                keywords=",".join(kind.keywords),
                group=self.guide.category_by_code[kind.category].name,
            )
            for kind in self.guide.kinds
        ]

    @cached_property
    def definitions(self) -> dict[str, ServiceDefinition]:
        """The service definition of every kind, by code."""
        return {k.code: ServiceDefinition(service_code=k.code, attributes=attributes_of(k)) for k in self.guide.kinds}

    def kind(self, code: str | None) -> Kind | None:
        """The kind behind a service code, if the guide has it."""
        return self.guide.kind_by_code.get(code or "")

    def service_notice(self, kind: Kind) -> str:
        """What the citizen may expect (the kind's usual completion limit), in the words of the hotline."""
        notice = f"此类诉求一般在{time_limit_text(kind.time_limits[kind.urgency])}"
        if kind.transfer_to is not None:
            notice += f"；情况紧急请直接拨打{kind.transfer_to}"
        return notice

    def unit_name(self, code: str | None) -> str | None:
        """A unit's name for the public (its code if the registry does not know it)."""
        if code is None:
            return None
        unit = self.guide.unit_by_code.get(code)
        return unit.name if unit is not None else code
