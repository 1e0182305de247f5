"""Device record uids: a certificate belongs to the device record it was issued for.

Every device gets a random uid that is never reused, and every certificate the uid of its
device, so a device added again under a deleted device's name is not reached by the old
certificates. Certificates whose device is gone are revoked now (they were valid by name only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("uid", sa.String(32)))
    ids = connection.execute(sa.text("SELECT id FROM devices")).scalars().all()
    for device_id in ids:
        connection.execute(
            sa.text("UPDATE devices SET uid = :uid WHERE id = :id"),
            {"uid": secrets.token_hex(16), "id": device_id},
        )
    with op.batch_alter_table("devices") as batch:
        batch.alter_column("uid", existing_type=sa.String(32), nullable=False)
        batch.create_index("ix_devices_uid", ["uid"], unique=True)
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("device_uid", sa.String(32)))
        batch.create_index("ix_certificates_device_uid", ["device_uid"])
    connection.execute(
        sa.text(
            "UPDATE certificates SET device_uid ="
            " (SELECT uid FROM devices WHERE devices.id = certificates.device_id)"
        )
    )
    connection.execute(
        sa.text(
            "UPDATE certificates SET revoked_at = :now"
            " WHERE device_uid IS NULL AND revoked_at IS NULL"
        ).bindparams(sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True)))
    )


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_index("ix_certificates_device_uid")
        batch.drop_column("device_uid")
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_uid")
        batch.drop_column("uid")
