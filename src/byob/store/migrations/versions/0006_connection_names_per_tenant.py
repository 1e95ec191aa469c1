"""connection names unique per tenant: one tenant's names reveal nothing of another's

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint("uq_connections_name", type_="unique")
        batch_op.create_unique_constraint("uq_connections_tenant_name", ["tenant", "name"])


def downgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint("uq_connections_tenant_name", type_="unique")
        batch_op.create_unique_constraint("uq_connections_name", ["name"])
