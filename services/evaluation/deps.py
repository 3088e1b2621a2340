"""What routes depend on: a database session and the service's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.settings import EvaluationSettings
from shared.app import db_session, runtime_of

Session = Annotated[AsyncSession, Depends(db_session)]


def settings_of(request: Request) -> EvaluationSettings:
    """The running service's settings."""
    settings = runtime_of(request).settings
    assert isinstance(settings, EvaluationSettings)
    return settings


Settings = Annotated[EvaluationSettings, Depends(settings_of)]
