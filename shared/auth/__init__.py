"""Credentials and roles: who may call the services and what each may do."""

from __future__ import annotations

from pathlib import Path

from shared.auth.guard import (
    AuthRuntime,
    auth_of,
    document_security,
    forbid,
    permission_of,
    record_access,
    require,
)
from shared.auth.principal import Principal
from shared.auth.roles import PERMISSIONS, ROLE_PERMISSIONS, ROLES, Permission, Role
from shared.auth.settings import AuthSettings

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = [
    "MIGRATIONS",
    "PERMISSIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "AuthRuntime",
    "AuthSettings",
    "Permission",
    "Principal",
    "Role",
    "auth_of",
    "document_security",
    "forbid",
    "permission_of",
    "record_access",
    "require",
]
