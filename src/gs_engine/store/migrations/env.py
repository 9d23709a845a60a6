"""Alembic environment. `gs_engine.store.migrate` passes an open connection in `config.attributes`.

Run by hand for development with a config whose `sqlalchemy.url` is set; offline (SQL script)
mode is not used by the engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from gs_engine.store.engine import make_engine
from gs_engine.store.models import Base

# Held while migrating so two engines starting against one PostgreSQL database do not race.
_PG_MIGRATION_LOCK = 0x67736501

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in the Alembic config to migrate by hand")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run them against a database")
run_migrations_online()
