"""The three services by name: their settings, app factory, migrations and default port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.dispatch.app import MIGRATIONS as DISPATCH_MIGRATIONS
from services.dispatch.app import create_app as create_dispatch
from services.dispatch.settings import DispatchSettings
from services.evaluation.app import MIGRATIONS as EVALUATION_MIGRATIONS
from services.evaluation.app import create_app as create_evaluation
from services.evaluation.settings import EvaluationSettings
from services.intake.app import MIGRATIONS as INTAKE_MIGRATIONS
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    """How to build and run one service."""

    name: str
    port: int
    settings: type[ServiceSettings]
    create_app: Callable[..., FastAPI]
    migrations: Path
    # On the path from a report's arrival to its assignment (intake, dispatch); evaluation follows the cases and
    # may lag under full load without any report waiting on it.
    response_path: bool = True

    def make_settings(self, **overrides: Any) -> ServiceSettings:
        """Settings from the environment, with explicit overrides on top."""
        return self.settings(**overrides)


SERVICES: dict[str, ServiceSpec] = {
    "intake": ServiceSpec("intake", 8001, IntakeSettings, create_intake, INTAKE_MIGRATIONS),
    "dispatch": ServiceSpec("dispatch", 8002, DispatchSettings, create_dispatch, DISPATCH_MIGRATIONS),
    "evaluation": ServiceSpec(
        "evaluation", 8003, EvaluationSettings, create_evaluation, EVALUATION_MIGRATIONS, response_path=False
    ),
}
