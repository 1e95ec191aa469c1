"""slot claims: the schedule slots a scheduler claimed, kept until it has dispatched them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slot_claims",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connection_ids", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slot_claims")
