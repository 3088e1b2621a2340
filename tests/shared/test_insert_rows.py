"""Plain rows inserted straight to the driver (SQLite: tuples; PostgreSQL: arrays) are stored exactly as SQLAlchemy's
insert stores them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import (
    ArrayPart,
    BigIntKey,
    UTCDateTime,
    buffered_writes,
    create_engine,
    insert_part,
    insert_rows,
    insert_together,
    reading,
    session_factory,
    update_part,
)

BEIJING = timezone(timedelta(hours=8))


def shaped(name: str, metadata: MetaData) -> Table:
    return Table(
        name,
        metadata,
        Column("seq", BigIntKey, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("at", UTCDateTime(), nullable=False),
        Column("done_at", UTCDateTime(), nullable=True),
        Column("body", LargeBinary, nullable=False),
        Column("detail", JSON, nullable=True),
        Column("urgent", Boolean, nullable=False),
        Column("note", String(20), server_default="none"),
        Column("label", String(20), default=lambda: "from python"),
    )


metadata = MetaData()
THEIRS = shaped("theirs", metadata)
OURS = shaped("ours", metadata)


def counters(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("day", Date, primary_key=True),
        Column("code", String(8), primary_key=True),
        Column("label", String(20), nullable=True),
        Column("reports", BigIntKey, nullable=False),
        Column("weight", Float, nullable=False),
    )


THEIR_COUNTS = counters("their_counts")
OUR_COUNTS = counters("our_counts")


def rows() -> list[dict[str, Any]]:
    at = datetime(2026, 11, 28, 8, 30, 0, 5, tzinfo=BEIJING)
    return [
        {
            "id": f"row-{n}",
            "at": at + timedelta(minutes=n),
            "done_at": None if n % 2 else at.astimezone(UTC),
            "body": bytes([n, 0, 255]),
            "detail": None if n == 3 else {"unit": "市水务局", "n": n, "list": [1.5, None]},
            "urgent": n % 3 == 0,
            "label": f"given {n}",
        }
        for n in range(5)
    ]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    async with made.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield made
    await made.dispose()


async def stored(engine: AsyncEngine, table: Table) -> list[tuple[Any, ...]]:
    """The table's rows as SQLite holds them (texts, numbers, blobs), not as SQLAlchemy reads them back."""
    async with reading(engine) as conn:
        return [tuple(row) for row in await conn.exec_driver_sql(f"select * from {table.name} order by seq")]


def compiled_statements(engine: AsyncEngine) -> list[bool]:
    """For each insert sent from now on, whether SQLAlchemy compiled it (False: it went to the driver as is)."""
    seen: list[bool] = []

    def note(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if statement.startswith("INSERT"):
            seen.append(context.compiled is not None)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    return seen


def mixed_rows() -> list[dict[str, Any]]:
    """Rows not all naming the same columns: SQLAlchemy's insert says what is wrong with them."""
    mixed = rows()
    mixed[2]["note"] = "given"  # one more column than the first row
    mixed[4]["note"] = "other"  # as many columns as the first, not the same ones
    del mixed[4]["done_at"]
    return mixed


async def test_rows_go_to_the_driver_and_are_stored_as_sqlalchemy_stores_them(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(THEIRS), rows())
    sent = compiled_statements(engine)
    async with engine.begin() as conn:
        await insert_rows(conn, OURS, rows())
    assert sent == [False]  # one statement, not compiled by SQLAlchemy
    ours, theirs = await stored(engine, OURS), await stored(engine, THEIRS)
    assert ours == theirs
    assert ours[0][2] == "2026-11-28 00:30:00.000005"  # UTC text, whatever offset the value had
    assert ours[3][5] == "null" and ours[1][5] == '{"unit":"市水务局","n":1,"list":[1.5,null]}'
    assert [row[7] for row in ours] == ["none"] * 5  # the server's default for the column left out


async def test_a_column_left_to_a_python_default_takes_sqlalchemy_s_insert(engine: AsyncEngine) -> None:
    plain = [{k: v for k, v in row.items() if k != "label"} for row in rows()]
    sent = compiled_statements(engine)
    async with engine.begin() as conn:
        await insert_rows(conn, OURS, plain)
    assert sent == [True]
    assert [row[8] for row in await stored(engine, OURS)] == ["from python"] * 5


async def test_rows_of_mixed_shapes_fare_as_with_sqlalchemy_s_insert(engine: AsyncEngine) -> None:
    mixed = mixed_rows()
    with pytest.raises(StatementError, match="done_at"):  # what SQLAlchemy's insert says of them
        async with engine.begin() as conn:
            await insert_rows(conn, OURS, mixed)
    assert await stored(engine, OURS) == []
    del mixed[4]
    async with engine.begin() as conn:
        await conn.execute(insert(THEIRS), mixed)
        await insert_rows(conn, OURS, mixed)
    assert await stored(engine, OURS) == await stored(engine, THEIRS)
    assert len(await stored(engine, OURS)) == 4


async def test_a_naive_timestamp_is_refused_and_nothing_is_stored(engine: AsyncEngine) -> None:
    bad = rows()
    bad[3]["at"] = datetime(2026, 11, 28, 8, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        async with engine.begin() as conn:
            await insert_rows(conn, OURS, bad)
    assert await stored(engine, OURS) == []


class _Base(DeclarativeBase):
    pass


class Parent(_Base):
    __tablename__ = "parent"
    id: Mapped[str] = mapped_column(String, primary_key=True)


CHILDREN = Table(
    "child", _Base.metadata, Column("id", String, primary_key=True), Column("parent", ForeignKey("parent.id"))
)


async def test_a_session_s_pending_objects_are_written_before_the_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
    async with session_factory(engine)() as session, session.begin():
        session.add(Parent(id="p"))  # pending: not yet sent to the database
        await insert_rows(session, CHILDREN, [{"id": "c", "parent": "p"}])
    async with reading(engine) as conn:
        assert (await conn.exec_driver_sql("select id, parent from child")).all() == [("c", "p")]
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):  # the rows do meet the foreign key
        async with engine.begin() as conn:
            await insert_rows(conn, CHILDREN, [{"id": "d", "parent": "nobody"}])


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(pg_url)
    async with made.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_Base.metadata.create_all)
    yield made
    await made.dispose()


async def pg_stored(engine: AsyncEngine, table: Table) -> list[tuple[Any, ...]]:
    """The table's rows as PostgreSQL's own texts (timestamps in UTC, JSON as written), in sequence order."""
    async with reading(engine) as conn:
        await conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        found = await conn.exec_driver_sql(
            f"select seq, id, at::text, done_at::text, encode(body, 'hex'), detail::text, urgent, note, label "
            f"from {table.name} order by seq"
        )
        return [tuple(row) for row in found]


async def test_on_postgresql_the_rows_go_as_arrays_and_are_stored_as_sqlalchemy_stores_them(
    pg_engine: AsyncEngine,
) -> None:
    async with pg_engine.begin() as conn:
        await conn.execute(insert(THEIRS), rows())
    sent = compiled_statements(pg_engine)
    async with pg_engine.begin() as conn:
        await insert_rows(conn, OURS, rows())
    assert sent == [False]  # one statement for the five rows, not SQLAlchemy's
    ours = await pg_stored(pg_engine, OURS)
    assert ours == await pg_stored(pg_engine, THEIRS)
    assert [row[1] for row in ours] == [f"row-{n}" for n in range(5)]  # the sequence follows the rows' order
    assert ours[0][2] == "2026-11-28 00:30:00.000005+00"
    assert ours[3][5] == "null" and ours[1][5] == '{"unit":"市水务局","n":1,"list":[1.5,null]}'
    assert ours[2][4] == "0200ff" and [row[7] for row in ours] == ["none"] * 5


async def test_on_postgresql_other_shapes_take_sqlalchemy_s_insert_and_bad_values_store_nothing(
    pg_engine: AsyncEngine,
) -> None:
    plain = [{k: v for k, v in row.items() if k != "label"} for row in rows()]
    sent = compiled_statements(pg_engine)
    async with pg_engine.begin() as conn:
        await insert_rows(conn, OURS, plain)
    assert sent == [True]
    assert [row[8] for row in await pg_stored(pg_engine, OURS)] == ["from python"] * 5
    mixed = mixed_rows()
    with pytest.raises(StatementError, match="done_at"):  # what SQLAlchemy's insert says of them
        async with pg_engine.begin() as conn:
            await insert_rows(conn, THEIRS, mixed)
    assert await pg_stored(pg_engine, THEIRS) == []
    bad = rows()
    bad[3]["at"] = datetime(2026, 11, 28, 8, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        async with pg_engine.begin() as conn:
            await insert_rows(conn, THEIRS, bad)
    assert await pg_stored(pg_engine, THEIRS) == []


async def test_on_postgresql_a_buffer_s_tables_and_its_notify_are_one_statement_heard_after_the_commit(
    pg_engine: AsyncEngine, pg_url: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False))
    await listener.add_listener("buffered", lambda *args: heard.put_nowait(args[3]))
    sent: list[str] = []
    event.listen(pg_engine.sync_engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    try:
        async with session_factory(pg_engine)() as session, session.begin():
            async with buffered_writes(session) as buffer:
                session.add(Parent(id="p"))  # the ORM's pending row: written first, the children refer to it
                buffer.add(CHILDREN, [{"id": "c1", "parent": "p"}, {"id": "c2", "parent": "p"}])
                buffer.add(OURS, rows()[:3])
                buffer.add(CHILDREN, [{"id": "c3", "parent": "p"}])
                buffer.then = "SELECT pg_notify('buffered', 'chunk')"
            assert heard.empty()  # written, not yet committed
            assert len([s for s in sent if "INSERT INTO child" in s]) == 1 and "pg_notify" in sent[-1]
            assert "INSERT INTO ours" in sent[-1]  # both tables and the NOTIFY: one statement after the ORM's
        assert await asyncio.wait_for(heard.get(), 5) == "chunk"
        async with reading(pg_engine) as conn:
            children = (await conn.exec_driver_sql("select id, parent from child order by id")).all()
        assert children == [("c1", "p"), ("c2", "p"), ("c3", "p")]
        assert [row[1] for row in await pg_stored(pg_engine, OURS)] == ["row-0", "row-1", "row-2"]
        with pytest.raises(IntegrityError, match="foreign key"):  # the statement's rows do meet the foreign key
            async with (
                session_factory(pg_engine)() as session,
                session.begin(),
                buffered_writes(session) as buffer,
            ):
                buffer.add(OURS, rows()[3:])
                buffer.add(CHILDREN, [{"id": "c4", "parent": "nobody"}])
        assert len(await pg_stored(pg_engine, OURS)) == 3  # nothing of the failed statement stayed
    finally:
        await listener.close()


async def test_a_buffered_block_inside_another_leaves_its_rows_to_the_outer_block(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        async with buffered_writes(session) as outer:
            async with buffered_writes(session) as inner:
                inner.add(OURS, rows()[:2])
            assert inner is outer
            # The inner block's end wrote nothing: the rows wait for the outer block's.
            assert (await session.execute(select(func.count()).select_from(OURS))).scalar() == 0
            outer.add(OURS, rows()[2:])
        assert (await session.execute(select(func.count()).select_from(OURS))).scalar() == 5
    assert [row[1] for row in await stored(engine, OURS)] == [f"row-{n}" for n in range(5)]


def counts(*found: tuple[int, str, int, float]) -> list[dict[str, Any]]:
    return [
        {"day": date(2026, 11, day), "code": code, "label": f"{code} of the 28th", "reports": n, "weight": w}
        for day, code, n, w in found
    ]


async def test_on_postgresql_an_upsert_and_an_update_of_arrays_store_what_sqlalchemy_s_store(
    pg_engine: AsyncEngine,
) -> None:
    first = counts((27, "a", 1, 0.5), (28, "a", 2, 1.25), (28, "b", 1, 0.5))
    then = counts((28, "a", 3, 0.25), (28, "c", 1, 2.0), (27, "a", -1, -0.5))  # two rows there, one new
    theirs = postgresql.insert(THEIR_COUNTS)
    adding = theirs.on_conflict_do_update(
        index_elements=["day", "code"],
        set_={name: THEIR_COUNTS.c[name] + theirs.excluded[name] for name in ("reports", "weight")},
    )
    async with pg_engine.begin() as conn:
        for batch in (first, then):
            await conn.execute(adding, batch)
            part = insert_part(OUR_COUNTS, batch, conn.dialect, adding=(("day", "code"), ("reports", "weight")))
            assert part is not None
            await insert_together(conn, {}, parts=[part])
    async with reading(pg_engine) as conn:
        read = "select day, code, label, reports, weight from {} order by day, code"
        ours = (await conn.exec_driver_sql(read.format("our_counts"))).all()
        assert ours == (await conn.exec_driver_sql(read.format("their_counts"))).all()
    assert [tuple(row)[:2] + tuple(row)[3:] for row in ours] == [
        (date(2026, 11, 27), "a", 0, 0.0),
        (date(2026, 11, 28), "a", 5, 1.5),
        (date(2026, 11, 28), "b", 1, 0.5),
        (date(2026, 11, 28), "c", 1, 2.0),
    ]
    # An update of arrays by key: the rows named get the columns given, as SQLAlchemy's update sets them.
    later = datetime(2026, 11, 28, 20, 0, tzinfo=BEIJING)
    changes = [
        {"id": "row-3", "done_at": later, "detail": {"closed": "是"}, "urgent": True},
        {"id": "row-1", "done_at": None, "detail": None, "urgent": False},
    ]
    async with pg_engine.begin() as conn:
        await conn.execute(insert(THEIRS), rows())
        await insert_rows(conn, OURS, rows())
    async with pg_engine.begin() as conn:
        by_id = update(THEIRS).where(THEIRS.c.id == bindparam("b_id"))
        await conn.execute(by_id, [{"b_id": c["id"]} | {k: v for k, v in c.items() if k != "id"} for c in changes])
        part = update_part(OURS, changes, "id", conn.dialect)
        assert part is not None
        await insert_together(conn, {}, parts=[part])
    ours = await pg_stored(pg_engine, OURS)
    assert ours == await pg_stored(pg_engine, THEIRS)
    assert ours[3][3] == "2026-11-28 12:00:00+00" and ours[3][5] == '{"closed":"是"}' and ours[3][6] is True
    assert ours[1][3] is None and ours[1][5] == "null" and ours[0][3] is not None  # row-0 untouched


async def test_on_postgresql_a_statement_s_parts_run_in_the_order_given(pg_engine: AsyncEngine) -> None:
    """The order a chunk's writes take their tables' row locks in: the same as statement by statement."""
    async with pg_engine.begin() as conn:
        parts = [insert_part(OURS, rows()[:2], conn.dialect), insert_part(OURS, rows()[2:3], conn.dialect)]
        parts.append(insert_part(OURS, rows()[3:], conn.dialect))
        await insert_together(conn, {}, parts=[part for part in parts if part is not None])
    # The sequence numbers show the order the parts ran in.
    assert [row[1] for row in await pg_stored(pg_engine, OURS)] == [f"row-{n}" for n in range(5)]


async def test_on_postgresql_a_merge_without_parts_is_written_on_its_own_after_the_statement(
    pg_engine: AsyncEngine,
) -> None:
    done: list[str] = []
    sent: list[str] = []
    event.listen(pg_engine.sync_engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    def writer(name: str) -> Any:
        async def write(session: Any, state: list[dict[str, Any]]) -> None:
            done.append(name)
            await insert_rows(session, OURS, state)

        return write

    def parts(dialect: Any, state: list[dict[str, Any]]) -> list[ArrayPart] | None:
        part = insert_part(OURS, state, dialect)
        return None if part is None else [part]

    async with session_factory(pg_engine)() as session, session.begin(), buffered_writes(session) as buffer:
        buffer.add(CHILDREN, [])
        buffer.merges["a"] = (writer("a"), rows()[:2])
        buffer.parts["a"] = parts
        buffer.merges["b"] = (writer("b"), rows()[2:3])
        buffer.parts["b"] = lambda _dialect, _state: None  # cannot: written on its own
        buffer.merges["c"] = (writer("c"), rows()[3:])
        buffer.parts["c"] = parts  # after one that cannot: on its own too, so the order holds
    assert done == ["b", "c"]
    assert len([s for s in sent if "INSERT INTO ours" in s]) == 3
    assert [row[1] for row in await pg_stored(pg_engine, OURS)] == [f"row-{n}" for n in range(5)]
