"""Alembic environment of the dispatch database."""

from services.dispatch.models import Base
from shared.migrate import run_env

run_env(Base.metadata)
