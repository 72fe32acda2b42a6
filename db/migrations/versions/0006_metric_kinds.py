"""Metric kinds: what each metric name is (a balance at an instant, or a flow over a period)
and its unit, kept as metrics are stored, so that series no longer probe the reported values
for it (with TimescaleDB that probe decompressed every compressed chunk).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_kinds",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("instant", sa.Boolean, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
    )
    op.execute(
        "INSERT INTO metric_kinds (name, instant, unit)"
        " SELECT name, bool_or(period_start IS NULL), min(unit) FROM financial_metrics"
        " GROUP BY name"
    )
    op.drop_index("ix_financial_metrics_name_period_start", "financial_metrics")


def downgrade() -> None:
    op.create_index(
        "ix_financial_metrics_name_period_start", "financial_metrics", ["name", "period_start"]
    )
    op.drop_table("metric_kinds")
