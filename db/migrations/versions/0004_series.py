"""Metric series: what kind a metric is (reported at all, an instant) by index.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_financial_metrics_name_period_start", "financial_metrics", ["name", "period_start"]
    )


def downgrade() -> None:
    op.drop_index("ix_financial_metrics_name_period_start", "financial_metrics")
