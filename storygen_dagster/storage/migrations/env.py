"""Alembic environment. Our version table is not `alembic_version`: Dagster's own storage keeps
its alembic state in the same database."""

from alembic import context
from sqlalchemy import Connection, create_engine, text

from storygen_dagster.storage.migrate import VERSION_TABLE
from storygen_dagster.storage.tables import metadata

# Serialises concurrent upgrades (CLI, code server, tests) on one database.
MIGRATION_LOCK_ID = 7_340_021


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("alembic needs a connection or sqlalchemy.url")
        engine = create_engine(url)
        with engine.connect() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    connection.execute(text("select pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        context.configure(
            connection=connection, target_metadata=metadata, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("select pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


run_migrations_online()
