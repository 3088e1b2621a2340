"""Roles and permissions: the one table of who may do what."""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["hotline", "grid", "town", "unit", "staff", "analyst", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

Permission = Literal[
    "reports:create",
    "reports:read",
    "reporter:reveal",
    "open311:read",
    "open311:post",
    "cases:read",
    "cases:act",
    "cases:rate",
    "cases:escalate",
    "dispatch:decide",
    "guide:read",
    "feedback:create",
    "evaluation:read",
    "metrics:read",
    "credentials:manage",
    "audit:read",
]
PERMISSIONS: Final[tuple[Permission, ...]] = get_args(Permission)

_READS_EVERYWHERE: frozenset[Permission] = frozenset(
    {"reports:read", "open311:read", "cases:read", "guide:read", "evaluation:read", "metrics:read"}
)

ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    # 12345 热线: takes calls, posts reports and Open311 requests, calls citizens back.
    "hotline": frozenset(
        {
            "reports:create",
            "reports:read",
            "reporter:reveal",
            "open311:read",
            "open311:post",
            "feedback:create",
            "evaluation:read",
            "guide:read",
        }
    ),
    # 网格员: reports from its own grids only, and confirms how they were handled.
    "grid": frozenset({"reports:create", "feedback:create", "guide:read"}),
    # 街乡镇 town: reports, sees, rates, escalates and confirms within its own territory.
    "town": frozenset(
        {"reports:create", "cases:read", "cases:rate", "cases:escalate", "feedback:create", "guide:read"}
    ),
    # 承办单位 unit: its own cases only.
    "unit": frozenset({"cases:read", "cases:act", "guide:read"}),
    # 派单中心 dispatch centre: everything operational in dispatch, reads everywhere.
    "staff": _READS_EVERYWHERE | {"reporter:reveal", "cases:act", "cases:rate", "cases:escalate", "dispatch:decide"},
    "analyst": frozenset({"evaluation:read", "metrics:read", "guide:read"}),
    "admin": frozenset(PERMISSIONS),
}

# Roles whose reach is limited to a scope: what a credential of the role must carry.
SCOPED: Final[dict[Role, str]] = {"unit": "units", "grid": "grids", "town": "streets"}


def allows(role: Role, permission: Permission) -> bool:
    """Whether a role holds a permission."""
    return permission in ROLE_PERMISSIONS[role]


def roles_with(permission: Permission) -> list[Role]:
    """The roles holding a permission, in table order."""
    return [role for role in ROLES if allows(role, permission)]
