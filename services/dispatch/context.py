"""What dispatch loads once per process: the guide, the jurisdiction and the judge."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.dispatch.judge import Judge
from services.dispatch.settings import DispatchSettings
from shared.guide import Guide, load_guide
from shared.jurisdiction import Jurisdiction, load_jurisdiction


@dataclass(frozen=True)
class DispatchContext:
    """Reference data and the judge, shared by routes and consumers."""

    guide: Guide
    jurisdiction: Jurisdiction
    judge: Judge
    tz: ZoneInfo
    settings: DispatchSettings

    @classmethod
    def load(cls, settings: DispatchSettings) -> DispatchContext:
        """Load and validate the configured guide and jurisdiction."""
        jurisdiction = load_jurisdiction(settings.jurisdiction_path)
        guide = load_guide(settings.guide_path, extra_units=jurisdiction.units)
        return cls(
            guide=guide,
            jurisdiction=jurisdiction,
            judge=Judge(guide, threshold=settings.confidence_threshold),
            tz=ZoneInfo(settings.timezone),
            settings=settings,
        )
