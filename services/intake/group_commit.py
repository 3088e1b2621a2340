"""Group commit for single reports: concurrent requests share one transaction, each answered after its commit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import service
from services.intake.models import Report
from services.intake.schemas import ReportCreate
from services.intake.service import Accepted
from services.intake.settings import IntakeSettings
from shared.app import runtime_of
from shared.pii import PersonalData
from shared.problems import Problem

MAX_GROUP = 256  # reports in one transaction; more waiting ones go into the next


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a report stands after its commit: created now, or the first delivery's row (a replay)."""

    row: Report | Accepted
    created: bool


@dataclass(frozen=True, slots=True)
class Storing:
    """How to store reports: the numbering, the time zone and the personal-data keys."""

    number_prefix: str
    tz: ZoneInfo
    personal_data: PersonalData


async def store_group(session: AsyncSession, bodies: list[ReportCreate], how: Storing) -> list[Stored | Problem]:
    """Store the new reports among ``bodies`` in the caller's transaction; replays and conflicts per report."""
    secret = how.personal_data.caller_secret
    known = await service.find_many(session, [(b.source, b.external_id) for b in bodies])
    fresh: dict[tuple[str, str], int] = {}
    for index, body in enumerate(bodies):
        key = (body.source, body.external_id)
        if key not in known and key not in fresh:
            fresh[key] = index
    rows = await service.accept_reports(
        session,
        [bodies[i] for i in fresh.values()],
        number_prefix=how.number_prefix,
        tz=how.tz,
        personal_data=how.personal_data,
    )
    created = dict(zip(fresh.values(), rows, strict=True))
    known |= {key: created[index] for key, index in fresh.items()}
    outcomes: list[Stored | Problem] = []
    for index, body in enumerate(bodies):
        if index in created:
            outcomes.append(Stored(created[index], created=True))
            continue
        first = known[(body.source, body.external_id)]
        try:
            service.check_replay(first, body, secret=secret)
        except Problem as conflict:
            outcomes.append(conflict)
        else:
            outcomes.append(Stored(first, created=False))
    return outcomes


@dataclass
class GroupCommit:
    """Queues single reports; whoever finds the committer idle commits everything queued in one transaction.

    A request is answered only from the outcome of the commit that holds its report, never before it.
    """

    sessions: async_sessionmaker[AsyncSession]
    how: Storing
    _waiting: list[tuple[ReportCreate, asyncio.Future[Stored]]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    groups: int = 0

    async def submit(self, body: ReportCreate) -> Stored:
        """Store one report (or find its replay); raises the report's conflict."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        while not future.done():
            async with self._lock:
                if future.done():
                    break
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                if group:
                    # Shielded: a caller that goes away must not cut a commit that others are waiting on.
                    await asyncio.shield(self._commit(group))
                    continue
            await asyncio.wait({future})  # its group is being committed for a caller that went away
        return future.result()

    async def _commit(self, group: list[tuple[ReportCreate, asyncio.Future[Stored]]]) -> None:
        self.groups += 1
        try:
            async with self.sessions() as session, session.begin():
                outcomes = await store_group(session, [body for body, _ in group], self.how)
        except Exception as error:
            if len(group) == 1:
                await self._alone(*group[0], error=error)
                return
            # One report spoiled the group (e.g. a race with another instance on the same external id): alone.
            for body, future in group:
                await self._commit([(body, future)])
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            _settle(future, outcome)

    async def _alone(self, body: ReportCreate, future: asyncio.Future[Stored], *, error: Exception) -> None:
        if not isinstance(error, IntegrityError):
            _settle(future, error)
            return
        # Another instance stored the same external id first: answer as a replay of it.
        try:
            async with self.sessions() as session, session.begin():
                row = await service.find_by_external_id(session, source=body.source, external_id=body.external_id)
                if row is None:
                    raise error
                service.check_replay(row, body, secret=self.how.personal_data.caller_secret)
        except Exception as again:
            _settle(future, again)
        else:
            _settle(future, Stored(row, created=False))


def _settle(future: asyncio.Future[Stored], outcome: Stored | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def committer_for(request: Request) -> GroupCommit:
    """The group committer of the running intake service behind a request."""
    runtime = runtime_of(request)
    found: tuple[object, GroupCommit] | None = getattr(request.app.state, "report_group_commit", None)
    if found is None or found[0] is not runtime:
        settings = runtime.settings
        assert isinstance(settings, IntakeSettings)
        how = Storing(
            number_prefix=settings.case_number_prefix,
            tz=ZoneInfo(settings.timezone),
            personal_data=settings.personal_data(),
        )
        found = (runtime, GroupCommit(runtime.sessions, how))
        request.app.state.report_group_commit = found
    return found[1]
