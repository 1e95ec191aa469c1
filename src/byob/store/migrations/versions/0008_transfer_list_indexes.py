"""indexes for the transfers list across connections: newest first, and by status

On 200,000 transfers, the first page of every connection's transfers read every row and
sorted them (PostgreSQL 330 ms, SQLite 830 ms); in index order it reads the page's rows
(80 ms and 28 ms, the rest being the count of the whole list). By status, the index on
(status, created_at, id) serves the same order and the counts by status the old index on
status alone served, so it replaces that one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_transfers_created", "transfers", ["created_at", "id"])
    op.create_index("ix_transfers_status_created", "transfers", ["status", "created_at", "id"])
    op.drop_index("ix_transfers_status", table_name="transfers")


def downgrade() -> None:
    op.create_index("ix_transfers_status", "transfers", ["status"])
    op.drop_index("ix_transfers_status_created", table_name="transfers")
    op.drop_index("ix_transfers_created", table_name="transfers")
