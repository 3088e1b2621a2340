"""Alembic environment of the evaluation database."""

from services.evaluation.models import Base
from shared.migrate import run_env

run_env(Base.metadata)
