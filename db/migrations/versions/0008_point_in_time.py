"""Point-in-time facts: each reported value carries when it was reported (its filing's
`filed_at`, copied onto the fact so that "the latest value filed by a date" reads one table),
and a filing may name the filing it amends (`10-K/A`, `10-Q/A`).

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


def downgrade() -> None:
    op.drop_column("financial_metrics", "reported_at")
    op.drop_column("filings", "amends_id")
