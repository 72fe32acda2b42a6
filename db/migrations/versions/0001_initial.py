"""Companies, filings, financial metrics, stock prices and API keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TSTZ = TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "companies",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ticker", sa.String(10), nullable=False, unique=True),
        sa.Column("cik", sa.String(10), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sector", sa.Text),
        sa.Column("industry", sa.Text),
        sa.Column("embedding", Vector(384)),
        sa.Column("created_at", TSTZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_companies_sector_ticker", "companies", ["sector", "ticker"])
    op.create_table(
        "filings",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("accession_number", sa.String(20), nullable=False, unique=True),
        sa.Column(
            "company_id",
            sa.BigInteger,
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("form_type", sa.String(16), nullable=False),
        sa.Column("filed_at", TSTZ, nullable=False),
        sa.Column("period_end", sa.Date),
        sa.Column("fiscal_year", sa.Integer),
        sa.Column("fiscal_period", sa.String(4)),
        sa.Column("title", sa.Text),
        sa.Column("summary", sa.Text),
        sa.Column("embedding", Vector(384)),
    )
    op.execute(
        "CREATE INDEX ix_filings_company_id_filed_at_accession_number"
        " ON filings (company_id, filed_at DESC, accession_number DESC)"
    )
    op.execute(
        "CREATE INDEX ix_filings_filed_at_accession_number"
        " ON filings (filed_at DESC, accession_number DESC)"
    )
    op.create_table(
        "financial_metrics",
        sa.Column(
            "company_id",
            sa.BigInteger,
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "filing_id",
            sa.BigInteger,
            sa.ForeignKey("filings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("period_start", sa.Date),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("fiscal_year", sa.Integer),
        sa.Column("fiscal_period", sa.String(4)),
        # the time column is in the key: TimescaleDB requires it in every unique index
        sa.PrimaryKeyConstraint("filing_id", "name", "period_end"),
    )
    op.create_index(
        "ix_financial_metrics_company_id_name_period_end",
        "financial_metrics",
        ["company_id", "name", "period_end"],
    )
    op.create_table(
        "stock_prices",
        sa.Column(
            "company_id",
            sa.BigInteger,
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("open", sa.Double, nullable=False),
        sa.Column("high", sa.Double, nullable=False),
        sa.Column("low", sa.Double, nullable=False),
        sa.Column("close", sa.Double, nullable=False),
        sa.Column("volume", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("company_id", "date"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("created_at", TSTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TSTZ),
        sa.Column("revoked_at", TSTZ),
    )
    if timescaledb_loadable():
        make_hypertables()


def timescaledb_loadable() -> bool:
    """TimescaleDB is used only when installed *and* preloaded; else plain tables stay."""
    preload = op.get_bind().execute(sa.text("SHOW shared_preload_libraries")).scalar() or ""
    return "timescaledb" in preload


def make_hypertables() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table, column, chunk, segment_by, compress_after in (
        ("financial_metrics", "period_end", "1 year", "company_id", "2 years"),
        ("stock_prices", "date", "3 months", "company_id", "90 days"),
    ):
        op.execute(
            f"SELECT create_hypertable('{table}', by_range('{column}', INTERVAL '{chunk}'),"
            " migrate_data => true)"
        )
        op.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress,"
            f" timescaledb.compress_segmentby = '{segment_by}',"
            f" timescaledb.compress_orderby = '{column} DESC')"
        )
        op.execute(f"SELECT add_compression_policy('{table}', INTERVAL '{compress_after}')")


def downgrade() -> None:
    # TimescaleDB's continuous aggregates over stock_prices (db/timescale.py) depend on it
    op.execute("DROP MATERIALIZED VIEW IF EXISTS price_bars_week, price_bars_month")
    for table in ("api_keys", "stock_prices", "financial_metrics", "filings", "companies"):
        op.drop_table(table)
