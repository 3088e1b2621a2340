"""Alembic environment of the credential store."""

from shared.auth.models import Base
from shared.migrate import run_env

run_env(Base.metadata)
