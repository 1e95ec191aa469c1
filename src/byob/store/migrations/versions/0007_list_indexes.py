"""indexes for the connections list: its keyset order and each connection's latest transfer

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_connections_created", "connections", ["created_at", "id"])
    op.create_index("ix_connections_tenant_created", "connections", ["tenant", "created_at", "id"])
    op.create_index("ix_transfers_connection_created", "transfers", ["connection_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_transfers_connection_created", table_name="transfers")
    op.drop_index("ix_connections_tenant_created", table_name="connections")
    op.drop_index("ix_connections_created", table_name="connections")
