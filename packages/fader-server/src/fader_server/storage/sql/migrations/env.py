"""Alembic environment: always run programmatically with a connection handed in.

`fader db upgrade` and server start call :func:`fader_server.storage.sql.migrate.upgrade`,
which puts the live connection in ``config.attributes["connection"]``; there is no
``alembic.ini`` and no online/offline URL juggling.
"""

from __future__ import annotations

from alembic import context

from fader_server.storage.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
