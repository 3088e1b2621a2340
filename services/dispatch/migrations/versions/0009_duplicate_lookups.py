"""duplicate lookups by caller, address and map cell

The duplicate search looks each report's caller, address and map cell up in an index of its own instead of ranking
every open case of the kind in the window. Existing cases get their cell, and their address without the blanks
around it (as new cases are stored), in pages of 5,000 rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 19:20:00.000000
"""

import logging
import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 5_000
log = logging.getLogger("alembic.runtime.migration")


def _cell(lat: float | None, lon: float | None) -> int | None:
    # services.dispatch.duplicates.cell_of as of this revision (tests/services/dispatch/test_duplicate_lookups.py).
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return (math.floor(lat * 100) + 9_000) * 40_000 + math.floor(lon * 100) + 18_000


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cell", sa.Integer(), nullable=True))
    cases = sa.table(
        "cases",
        sa.column("id", sa.String()),
        sa.column("lat", sa.Float()),
        sa.column("lon", sa.Float()),
        sa.column("address", sa.String()),
        sa.column("cell", sa.Integer()),
    )
    bind = op.get_bind()
    page = (
        sa.select(cases.c.id, cases.c.lat, cases.c.lon, cases.c.address)
        .where(cases.c.id > sa.bindparam("after"), sa.or_(cases.c.lat.is_not(None), cases.c.address.is_not(None)))
        .order_by(cases.c.id)
        .limit(PAGE)
    )
    update = (
        sa.update(cases)
        .where(cases.c.id == sa.bindparam("case_id"))
        .values(cell=sa.bindparam("new_cell"), address=sa.bindparam("new_address"))
    )
    after, seen = "", 0
    while rows := bind.execute(page, {"after": after}).all():
        changes = []
        for case_id, lat, lon, address in rows:
            cell, trimmed = _cell(lat, lon), (address.strip() or None) if address is not None else None
            if cell is not None or trimmed != address:
                changes.append({"case_id": case_id, "new_cell": cell, "new_address": trimmed})
        if changes:
            bind.execute(update, changes)
        after, seen = rows[-1][0], seen + len(rows)
        log.info("cases with a place: %d looked at", seen)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_reporter_key")
        batch_op.create_index("ix_cases_caller_received", ["reporter_key", "received_at"], unique=False)
        batch_op.create_index("ix_cases_address_received", ["address", "received_at"], unique=False)
        batch_op.create_index("ix_cases_cell_kind_received", ["cell", "kind_code", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_cell_kind_received")
        batch_op.drop_index("ix_cases_address_received")
        batch_op.drop_index("ix_cases_caller_received")
        batch_op.create_index("ix_cases_reporter_key", ["reporter_key"], unique=False)
        batch_op.drop_column("cell")
