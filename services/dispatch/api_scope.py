"""Which cases a caller sees and may act on: a unit its own, a town its territory, staff and admin all."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import service
from services.dispatch.models import Case, CaseTask
from shared.auth import Principal


def visible(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on cases a caller may see; None when it sees every case."""
    if principal.acts_for_anyone:
        return None
    if principal.role == "unit":
        # Primary unit, or a task on the case: cooperating (协办) or whistled (吹哨报到).
        # As `id IN (...)` rather than a correlated EXISTS: each side of the OR is then a lookup in an index
        # (primary_unit's, the primary key) instead of a test of every case in the table.
        tasked = Case.id.in_(select(CaseTask.case_id).where(CaseTask.unit_code.in_(principal.units)))
        return or_(Case.primary_unit.in_(principal.units), tasked)
    if principal.role == "town":
        return Case.street_code.in_(principal.streets)
    return false()


async def sees(session: AsyncSession, principal: Principal, case: Case) -> bool:
    """Whether a caller may see one case."""
    condition = visible(principal)
    if condition is None:
        return True
    found = await session.execute(select(func.count()).select_from(Case).where(Case.id == case.id, condition))
    return bool(found.scalar_one())


async def list_visible(
    session: AsyncSession,
    principal: Principal,
    *,
    status: list[str],
    unit: str | None,
    kind: str | None,
    street: str | None,
    source: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Case], int]:
    """Cases matching the filters among those the caller sees, newest first, and how many in all."""
    return await service.list_cases(
        session,
        status=status,
        unit=unit,
        kind=kind,
        street=street,
        source=source,
        limit=limit,
        offset=offset,
        visible=visible(principal),
    )
