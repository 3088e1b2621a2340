"""Who is calling: a verified credential with its role and scope."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.auth.roles import Permission, Role, allows


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: the credential's id, its role and the units, grids and streets (街道) it may reach."""

    credential_id: str
    role: Role
    units: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    via: str = field(default="api-key", compare=False)

    def can(self, permission: Permission) -> bool:
        """Whether the role holds a permission."""
        return allows(self.role, permission)

    @property
    def acts_for_anyone(self) -> bool:
        """Staff and admin act for any unit and see every case."""
        return self.role in ("staff", "admin")
