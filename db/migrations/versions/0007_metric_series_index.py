"""Metric series on TimescaleDB: an index of financial_metrics by (name, company_id,
period_end), carrying the values a series reads, where the table is a hypertable.

A series reads one metric of a few dozen companies over a span of chunks. By
(company_id, name, period_end) each chunk's index is descended once per company (38 times per
chunk for 50 companies, three chunks for two years); by name first, one metric's entries of
all companies lie together in a few pages of each chunk's index, and with the values included
the chunks' scans are index-only. Plain PostgreSQL, one index for all years, keeps its plan.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "ix_financial_metrics_name_company_id_period_end"
INSTALLED = "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL"
HYPERTABLE = (
    "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables"
    " WHERE hypertable_name = 'financial_metrics')"
)


def is_hypertable() -> bool:
    bind = op.get_bind()
    if not bind.execute(sa.text(INSTALLED)).scalar():
        return False
    return bool(bind.execute(sa.text(HYPERTABLE)).scalar())


def upgrade() -> None:
    if is_hypertable():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON financial_metrics"
            " (name, company_id, period_end) INCLUDE (period_start, filing_id, value)"
        )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
