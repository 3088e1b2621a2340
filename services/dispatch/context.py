"""What dispatch loads once per process: the guide, the jurisdiction and the judge."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from services.dispatch.classifier import Model, default_model_path
from services.dispatch.judge import Judge, ModelClassifier
from services.dispatch.settings import DispatchSettings
from shared.guide import Guide, load_guide
from shared.jurisdiction import Jurisdiction, load_jurisdiction


def _model_for(guide: Guide, path: Path | None) -> Model | None:
    """The configured model (it must fit the guide), else the shipped one if it does, else none (guide centroids)."""
    if path is not None:
        model = Model.load(path)
        ModelClassifier(guide, model)  # refuses a model trained on another guide, saying what to do
        return model
    shipped = default_model_path()
    if not shipped.exists():
        return None
    model = Model.load(shipped)
    try:
        ModelClassifier(guide, model)
    except ValueError:
        log.info(
            "the shipped model was trained on another guide than %s; judging by the guide's examples", guide.version
        )
        return None
    return model


log = logging.getLogger("jiesu.dispatch")


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
            judge=Judge(guide, threshold=settings.confidence_threshold, model=_model_for(guide, settings.model_path)),
            tz=ZoneInfo(settings.timezone),
            settings=settings,
        )
