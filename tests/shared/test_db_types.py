"""UTC timestamps on SQLite: written in SQLAlchemy's own text form, read back aware and equal, compared correctly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import StatementError

from shared.db import UTCDateTime, create_engine

BEIJING = timezone(timedelta(hours=8))
TIMES = [
    datetime(2026, 11, 27, 16, 0, 0, tzinfo=UTC),  # no microseconds: still written with six digits
    datetime(2026, 11, 28, 0, 30, 5, 123456, tzinfo=BEIJING),  # another offset, another day in UTC
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year of three digits
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]

metadata = MetaData()
stamps = Table("stamps", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))


def test_the_text_is_what_sqlalchemy_s_sqlite_datetime_writes() -> None:
    ours = UTCDateTime().bind_processor(sqlite.dialect())
    theirs = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert ours is not None and theirs is not None
    for value in TIMES:
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    assert ours(TIMES[1]) == "2026-11-27 16:30:05.123456"
    with pytest.raises(ValueError, match="timezone-aware"):
        ours(datetime(2026, 11, 27, 16, 0))


def test_a_repeated_instant_gets_its_text_again_whatever_its_offset() -> None:
    convert = UTCDateTime().bind_processor(sqlite.dialect())
    assert convert is not None
    instant = datetime(2026, 11, 28, 8, 0, 0, 250000, tzinfo=BEIJING)
    first = convert(instant)
    assert convert(instant.astimezone(UTC)) == first == "2026-11-28 00:00:00.250000"
    assert convert(instant + timedelta(microseconds=1)) == "2026-11-28 00:00:00.250001"
    # The naive wall time of a text already given is still refused, not matched to it.
    with pytest.raises(ValueError, match="timezone-aware"):
        convert(instant.astimezone(UTC).replace(tzinfo=None))
    for n in range(10_000):  # many instants later the first is still written right
        convert(instant + timedelta(seconds=n + 1))
    assert convert(instant) == first


async def test_stored_times_come_back_equal_and_compare_in_order(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(stamps), [{"id": i, "at": value} for i, value in enumerate(TIMES)])
        async with engine.connect() as conn:
            back = {row.id: row.at for row in await conn.execute(select(stamps))}
            stored = (await conn.execute(text("select at from stamps where id = 1"))).scalar_one()
            # A bound time in a filter is written the same way, so text comparison orders as time does.
            later = await conn.execute(select(stamps.c.id).where(stamps.c.at > TIMES[0]).order_by(stamps.c.at))
            later_ids = list(later.scalars())
        assert back == dict(enumerate(TIMES))
        assert all(value.tzinfo is UTC for value in back.values())
        assert stored == "2026-11-27 16:30:05.123456"
        assert later_ids == [1, 3]
        async with engine.begin() as conn:
            with pytest.raises(StatementError, match="timezone-aware"):
                await conn.execute(insert(stamps), {"id": 9, "at": datetime(2026, 1, 1)})
    finally:
        await engine.dispose()
