"""The migrations create exactly the schema `tables.py` declares, on both dialects."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fader_server.storage.sql import migrate
from fader_server.storage.sql.tables import metadata


def _full_text(difference: object) -> bool:
    """Full-text search objects are dialect-specific and live only in the migration."""
    name = getattr(difference[1], "name", "") if isinstance(difference, tuple) else ""
    return name.startswith("flag_search") or name == "ix_resources_search"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_declared_tables(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path}/m.db"
    engine = sa.create_engine(url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert [d for d in differences if not _full_text(d)] == []
    finally:
        engine.dispose()


def test_postgresql_rollup_tables_leave_room_for_updated_rows(postgres_url: str) -> None:
    """Migration 0007: rollup rows are updated by every summary; half-empty pages let
    PostgreSQL keep each row's new version in its page (no table growth between vacuums)."""
    engine = sa.create_engine(postgres_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            options = dict(
                connection.execute(
                    sa.text(
                        "SELECT relname, reloptions FROM pg_class "
                        "WHERE relname IN ('usage_minutes', 'usage_hours')"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    assert set(options) == {"usage_minutes", "usage_hours"}
    for table, reloptions in options.items():
        assert "fillfactor=50" in reloptions, (table, reloptions)
