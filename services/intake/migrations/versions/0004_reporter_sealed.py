"""reporters' personal data sealed at rest; masked forms and caller key beside it; keyed fingerprints

Every existing report's reporter is sealed with the first of JIESU_INTAKE_PII_KEYS (AES-GCM), its masked forms
and caller key (HMAC with JIESU_INTAKE_CALLER_KEY_SECRET) stored beside it, and the plain column dropped; the
stored fingerprints are rekeyed with the caller secret, and the report events still in the outbox lose the raw
reporter. The keys come from the intake settings in the environment, so run it as the service runs.

On SQLite ``secure_delete`` zeroes the space the plain values leave; on PostgreSQL the old row versions stay in
the table's files until ``VACUUM FULL reports`` (and ``outbox``) rewrites them. Backups taken before still hold
the plain values.

Downgrade opens the sealed values back into the plain column; fingerprints stay keyed (a replay of a report
accepted before the downgrade then answers 409) and the outbox keeps the masked reporter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 14:45:00
"""

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORT_RECEIVED = "jiesu.intake.report.received.v1"

reports = sa.table(
    "reports",
    sa.column("seq", sa.BigInteger),
    sa.column("id", sa.String),
    sa.column("fingerprint", sa.String),
    sa.column("reporter", sa.JSON),
    sa.column("reporter_sealed", sa.Text),
    sa.column("reporter_masked", sa.JSON),
    sa.column("caller_key", sa.String),
)
outbox = sa.table("outbox", sa.column("seq", sa.BigInteger), sa.column("type", sa.String), sa.column("payload"))


def _personal_data() -> Any:
    # Imported here: only a database with reports needs the keys (an empty one migrates without settings).
    from services.intake.settings import IntakeSettings

    return IntakeSettings().personal_data()


def _context(report_id: str) -> str:
    # The sealed value's associated data as of this revision (services/intake/service.py reporter_context).
    return f"jiesu.intake.reports/{report_id}/reporter"


def _rekeyed(digest: str, secret: str) -> str:
    # The keyed fingerprint as of this revision (services/intake/service.py keyed_fingerprint).
    return hmac.new(secret.encode(), f"report-fingerprint:{digest}".encode(), hashlib.sha256).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("PRAGMA secure_delete = ON")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reporter_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reporter_masked", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("caller_key", sa.String(length=64), nullable=True))
    rows = bind.execute(sa.select(reports.c.seq, reports.c.id, reports.c.fingerprint, reports.c.reporter)).all()
    events = bind.execute(sa.select(outbox.c.seq, outbox.c.payload).where(outbox.c.type == REPORT_RECEIVED)).all()
    if rows or events:
        personal = _personal_data()
        for seq, report_id, fingerprint, reporter in rows:
            values: dict[str, Any] = {"fingerprint": _rekeyed(fingerprint, personal.caller_secret)}
            if reporter is not None:
                plain = {"name": None, "phone": None, "id_number": None, **reporter}
                summary = personal.summary(plain)
                values |= {
                    "reporter_sealed": personal.keyring.seal(plain, context=_context(report_id)),
                    "reporter_masked": {
                        "name": summary["name_masked"],
                        "phone": summary["phone_masked"],
                        "id_number": summary["id_number_masked"],
                    },
                    "caller_key": summary["caller_key"],
                }
            bind.execute(sa.update(reports).where(reports.c.seq == seq).values(**values))
        for seq, payload in events:
            data = json.loads(payload)
            reporter = data.get("reporter")
            if isinstance(reporter, dict) and "caller_key" not in reporter:
                data["reporter"] = personal.summary(reporter)
                body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()
                bind.execute(sa.update(outbox).where(outbox.c.seq == seq).values(payload=body))
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("reporter")


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reporter", sa.JSON(), nullable=True))
    rows = bind.execute(
        sa.select(reports.c.seq, reports.c.id, reports.c.reporter_sealed).where(reports.c.reporter_sealed.is_not(None))
    ).all()
    if rows:
        keyring = _personal_data().keyring
        for seq, report_id, sealed in rows:
            plain = keyring.open(sealed, context=_context(report_id))
            bind.execute(sa.update(reports).where(reports.c.seq == seq).values(reporter=plain))
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("caller_key")
        batch_op.drop_column("reporter_masked")
        batch_op.drop_column("reporter_sealed")
