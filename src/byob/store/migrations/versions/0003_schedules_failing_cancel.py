"""schedules failing cancel

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failing_check", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failing_message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_transfers_status", ["status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_status")
        batch_op.drop_column("cancel_requested")

    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("failing_since")
        batch_op.drop_column("failing_message")
        batch_op.drop_column("failing_check")
        batch_op.drop_column("last_slot")
