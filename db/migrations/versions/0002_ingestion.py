"""Ingestion: every filing's position in ingestion order, and a fingerprint of its content.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE filings_ingest_seq AS bigint")
    op.add_column("filings", sa.Column("ingest_seq", sa.BigInteger))
    # filings already there take their places in id order
    op.execute("UPDATE filings SET ingest_seq = nextval('filings_ingest_seq') WHERE id IN"
               " (SELECT id FROM filings ORDER BY id)")  # fmt: skip
    op.alter_column(
        "filings",
        "ingest_seq",
        nullable=False,
        server_default=sa.text("nextval('filings_ingest_seq')"),
    )
    op.execute("ALTER SEQUENCE filings_ingest_seq OWNED BY filings.ingest_seq")
    op.create_index("filings_ingest_seq_key", "filings", ["ingest_seq"], unique=True)
    op.add_column("filings", sa.Column("content_sha256", sa.String(64)))


def downgrade() -> None:
    op.drop_column("filings", "content_sha256")
    op.drop_index("filings_ingest_seq_key", "filings")
    op.drop_column("filings", "ingest_seq")  # drops the owned sequence too
