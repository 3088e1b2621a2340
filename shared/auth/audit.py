"""The audit log: who, with which role, did what, when, on which path, and how it ended."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth.models import AuditEntry
from shared.auth.principal import Principal
from shared.events import utcnow

log = logging.getLogger("jiesu.audit")


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit rows to read."""

    credential_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    limit: int = 100
    offset: int = 0


class AuditLog:
    """Writes and reads the audit table of the credential store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, service: str) -> None:
        self.sessions = sessions
        self.service = service

    async def record(
        self,
        *,
        principal: Principal | None,
        action: str,
        method: str,
        path: str,
        outcome: str,
        status: int,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write one row in its own transaction."""
        entry = AuditEntry(
            at=utcnow(),
            service=self.service,
            credential_id=principal.credential_id if principal else None,
            role=principal.role if principal else None,
            action=action,
            method=method,
            path=path[:500],
            outcome=outcome,
            status=status,
            detail=detail or {},
        )
        async with self.sessions() as session, session.begin():
            session.add(entry)
        log.info(
            "audit %s %s %s %s by %s (%s): %s",
            outcome,
            method,
            path,
            action,
            entry.credential_id,
            entry.role,
            status,
        )

    async def read(self, query: AuditQuery) -> tuple[list[AuditEntry], bool]:
        """Rows newest first, and whether more follow."""
        statement = select(AuditEntry).order_by(AuditEntry.id.desc())
        if query.credential_id is not None:
            statement = statement.where(AuditEntry.credential_id == query.credential_id)
        if query.outcome is not None:
            statement = statement.where(AuditEntry.outcome == query.outcome)
        if query.since is not None:
            statement = statement.where(AuditEntry.at >= query.since)
        async with self.sessions() as session, session.begin():
            rows = list((await session.execute(statement.offset(query.offset).limit(query.limit + 1))).scalars())
        return rows[: query.limit], len(rows) > query.limit
