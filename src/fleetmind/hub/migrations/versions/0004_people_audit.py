"""People, scoped and expiring tokens, the audit log, enrollment groups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("user_name", sa.String(64), nullable=False, server_default="admin")
        )
        batch.add_column(
            sa.Column("scopes", sa.String(100), nullable=False, server_default="admin operate read")
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
    # the admin token of an earlier version belongs to the admin user
    op.execute(
        "INSERT INTO users (name, role, created_at, failed_logins)"
        " SELECT 'admin', 'admin', min(created_at), 0 FROM api_tokens HAVING count(*) > 0"
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("claim_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name_template", sa.String(100), nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("desired", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("enrollments")
    op.drop_table("audit")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
        batch.drop_column("user_name")
    op.drop_table("users")
