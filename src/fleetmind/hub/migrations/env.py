"""Alembic environment: the hub passes an open connection in ``config.attributes``."""

from alembic import context

from fleetmind.auth.store import metadata as auth_metadata
from fleetmind.commands.store import metadata as commands_metadata
from fleetmind.devices.store import metadata as devices_metadata
from fleetmind.twins.store import metadata as twins_metadata

target_metadata = [devices_metadata, auth_metadata, twins_metadata, commands_metadata]

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=target_metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
