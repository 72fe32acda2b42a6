"""Point-in-time facts: each reported value carries when it was reported (its filing's
`filed_at`, copied onto the fact so that "the latest value filed by a date" reads one table),
and a filing may name the filing it amends (`10-K/A`, `10-Q/A`).

On TimescaleDB the metric-series index of migration 0007 carries `reported_at` too, so that a
series of the latest (or as-of, or first) revisions still reads the chunks index-only.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SERIES_INDEX = "ix_financial_metrics_name_company_id_period_end"
INSTALLED = "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL"
HYPERTABLE = (
    "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables"
    " WHERE hypertable_name = 'financial_metrics')"
)


def is_hypertable() -> bool:
    bind = op.get_bind()
    return bool(
        bind.execute(sa.text(INSTALLED)).scalar() and bind.execute(sa.text(HYPERTABLE)).scalar()
    )


def series_index(*included: str) -> None:
    if not is_hypertable():
        return
    op.execute(f"DROP INDEX IF EXISTS {SERIES_INDEX}")
    op.execute(
        f"CREATE INDEX {SERIES_INDEX} ON financial_metrics (name, company_id, period_end)"
        f" INCLUDE ({', '.join(included)})"
    )


def upgrade() -> None:
    op.add_column(
        "filings",
        sa.Column(
            "amends_id",
            sa.BigInteger,
            sa.ForeignKey("filings.id", name="fk_filings_amends_id", ondelete="SET NULL"),
        ),
    )
    op.add_column("financial_metrics", sa.Column("reported_at", TIMESTAMP(timezone=True)))
    op.execute(
        "UPDATE financial_metrics m SET reported_at = f.filed_at FROM filings f"
        " WHERE f.id = m.filing_id"
    )
    op.alter_column("financial_metrics", "reported_at", nullable=False)
    series_index("period_start", "filing_id", "value", "reported_at")


def downgrade() -> None:
    series_index("period_start", "filing_id", "value")
    op.drop_column("financial_metrics", "reported_at")
    op.drop_column("filings", "amends_id")
