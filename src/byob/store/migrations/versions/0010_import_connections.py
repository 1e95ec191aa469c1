"""import connections: a direction and the import they load, each run's object counts, and
the object versions an import rejected

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("direction", sa.String(8), nullable=False, server_default="export")
        )
        batch_op.add_column(
            sa.Column("import_name", sa.String(128), nullable=False, server_default="")
        )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_counts", sa.JSON(), nullable=True))
    op.create_table(
        "import_rejections",
        sa.Column("connection_id", sa.String(32), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("transfer_id", sa.String(32), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_import_rejections_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "object_key", "etag", name="pk_import_rejections"),
    )


def downgrade() -> None:
    op.drop_table("import_rejections")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("import_counts")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("import_name")
        batch_op.drop_column("direction")
