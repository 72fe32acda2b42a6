"""Filing documents: where each is stored, its media type and size.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("filings", sa.Column("document_key", sa.Text))
    op.add_column("filings", sa.Column("document_content_type", sa.Text))
    op.add_column("filings", sa.Column("document_size", sa.BigInteger))


def downgrade() -> None:
    for column in ("document_size", "document_content_type", "document_key"):
        op.drop_column("filings", column)
