"""Alembic environment of the intake database."""

from services.intake.models import Base
from shared.migrate import run_env

run_env(Base.metadata)
